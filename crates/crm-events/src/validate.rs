//! Ingest validation: JSON Schema (the published contract) first, then the
//! rules a schema cannot say (identity normalisation, self-merge).
//!
//! Every error names the JSON pointer of the field it is about
//! (`/data/channel`, `/data/identities/1/value`, `/customer_id`).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::catalog::*;
use crate::event::{Event, EventData, EventType};
use crate::identity::Identity;

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON pointer into the event, `""` for the event itself.
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// At most this many errors are reported for one event.
const MAX_ERRORS: usize = 20;

/// Deepest nesting of objects and arrays in an event, the event object
/// itself being level 1 (`data` is level 2). A deeper event is rejected with
/// an error at the path of the first value past the limit.
pub const MAX_DEPTH: usize = 32;

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Whether any object or array is nested deeper than `max` levels. No
/// allocation but the stack: the check every valid event pays.
pub(crate) fn nests_deeper_than(value: &Value, max: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((v, depth)) = stack.pop() {
        let container = |c: &&Value| c.is_object() || c.is_array();
        match v {
            Value::Object(_) | Value::Array(_) if depth > max => return true,
            Value::Object(m) => stack.extend(m.values().filter(container).map(|c| (c, depth + 1))),
            Value::Array(a) => stack.extend(a.iter().filter(container).map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    false
}

/// The JSON pointer of the first object or array nested deeper than `max`
/// levels, if any. Iterative: hostile input cannot exhaust the stack.
pub fn too_deep(value: &Value, max: usize) -> Option<String> {
    if !nests_deeper_than(value, max) {
        return None;
    }
    let mut stack: Vec<(&Value, usize, String)> = vec![(value, 1, String::new())];
    while let Some((v, depth, path)) = stack.pop() {
        let children: Vec<(&Value, String)> = match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, c)| (c, format!("{path}/{}", escape_pointer(k))))
                .collect(),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, c)| (c, format!("{path}/{i}")))
                .collect(),
            _ => continue,
        };
        if depth > max {
            return Some(path);
        }
        // Reverse so the first child is examined first.
        for (c, p) in children.into_iter().rev() {
            if c.is_object() || c.is_array() {
                stack.push((c, depth + 1, p));
            }
        }
    }
    None
}

/// Compiled validators for the envelope and every type and version.
pub struct Validator {
    envelope: jsonschema::Validator,
    by_type: HashMap<(EventType, u32), jsonschema::Validator>,
}

impl Default for Validator {
    fn default() -> Self {
        Self::new()
    }
}

fn compile(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .expect("generated schemas compile")
}

impl Validator {
    /// Compiles the generated schemas (the same ones `schemas/` holds).
    pub fn new() -> Self {
        crate::identity::warm_up();
        let mut by_type = HashMap::new();
        for &t in EventType::ALL {
            for &v in t.versions() {
                by_type.insert((t, v), compile(&crate::schema::for_type(t, v)));
            }
        }
        Validator {
            envelope: compile(&crate::schema::envelope()),
            by_type,
        }
    }

    /// Parses and validates one event from JSON text.
    ///
    /// Most events take the quick path (`crate::quick`: the text straight
    /// to the typed event, and the few checks the schema adds to the types);
    /// an event it cannot vouch for takes the full path ([`Self::validate`]),
    /// which decides and names the field at fault. Both give the same
    /// answer for any text.
    pub fn validate_json(&self, text: &[u8]) -> Result<Event, Vec<FieldError>> {
        match crate::quick::parse(text) {
            Some(event) => finish(event),
            None => self.validate_json_fully(text),
        }
    }

    /// [`Self::validate_json`] without the quick path: the JSON Schema over a
    /// parsed `serde_json::Value`, then the typed event.
    pub fn validate_json_fully(&self, text: &[u8]) -> Result<Event, Vec<FieldError>> {
        match serde_json::from_slice::<Value>(text) {
            Ok(v) => self.validate(v),
            Err(e) => Err(vec![FieldError::new("", format!("not valid JSON: {e}"))]),
        }
    }

    /// Validates one parsed event and returns it typed and normalised.
    pub fn validate(&self, value: Value) -> Result<Event, Vec<FieldError>> {
        finish(self.typed(value)?)
    }

    /// The typed event of a parsed one that passes the schema, before its
    /// identities are normalised and the cross-field rules checked.
    fn typed(&self, value: Value) -> Result<Event, Vec<FieldError>> {
        if let Some(path) = too_deep(&value, MAX_DEPTH) {
            return Err(vec![FieldError::new(
                path,
                format!("nested deeper than {MAX_DEPTH} levels of objects and arrays"),
            )]);
        }
        let Some(obj) = value.as_object() else {
            return Err(vec![FieldError::new(
                "",
                format!("an event must be a JSON object, not {}", kind_of(&value)),
            )]);
        };
        let t = obj
            .get("type")
            .and_then(Value::as_str)
            .and_then(EventType::parse);
        let version = match obj.get("version") {
            None => Some(1),
            Some(v) => v.as_u64().and_then(|v| u32::try_from(v).ok()),
        };
        let validator = match (t, version) {
            (Some(t), Some(v)) => match self.by_type.get(&(t, v)) {
                Some(val) => val,
                None => {
                    let mut errors = schema_errors(&self.envelope, &value);
                    errors.push(FieldError::new(
                        "/version",
                        format!(
                            "{t} has no version {v}; known versions: {}",
                            t.versions()
                                .iter()
                                .map(|v| v.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                    return Err(errors);
                }
            },
            _ => return Err(schema_errors(&self.envelope, &value)),
        };
        // The error walk is only taken for an event that fails: `is_valid`
        // is much cheaper than collecting (no) errors.
        if !validator.is_valid(&value) {
            let errors = schema_errors(validator, &value);
            if !errors.is_empty() {
                return Err(errors);
            }
        }
        Event::from_value(value)
            .map_err(|e| vec![FieldError::new("", format!("cannot be read: {e}"))])
    }

    /// What the full path makes of `text` before normalisation, and what the
    /// quick path does: for the tests that hold the quick path to the full
    /// one. Not part of the API.
    #[doc(hidden)]
    pub fn both_paths(&self, text: &[u8]) -> (Result<Event, Vec<FieldError>>, Option<Event>) {
        let full = match serde_json::from_slice::<Value>(text) {
            Ok(v) => self.typed(v),
            Err(e) => Err(vec![FieldError::new("", format!("not valid JSON: {e}"))]),
        };
        (full, crate::quick::parse(text))
    }
}

/// Normalises the identities of a typed event and checks the rules across
/// fields: the last step of both paths.
fn finish(mut event: Event) -> Result<Event, Vec<FieldError>> {
    let errors = normalize_and_check(&mut event);
    if errors.is_empty() {
        Ok(event)
    } else {
        Err(errors)
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Runs a schema and turns its errors into field errors that name the field:
/// a missing or unexpected property is reported at its own path, not at its
/// parent's.
fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Vec<FieldError> {
    use jsonschema::error::ValidationErrorKind as K;
    let mut out = Vec::new();
    for e in validator.iter_errors(value) {
        if out.len() >= MAX_ERRORS {
            break;
        }
        let base = e.instance_path().to_string();
        match e.kind() {
            K::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                out.push(FieldError::new(format!("{base}/{name}"), "is required"));
            }
            K::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    let message = if base.is_empty()
                        && matches!(name.as_str(), "recorded_at" | "position")
                    {
                        "is set by the ledger when it appends; publishers never send it".to_string()
                    } else if base.is_empty() {
                        "is not an envelope field (unknown top-level fields are rejected; put custom fields inside data)".to_string()
                    } else {
                        "is not a known field here".to_string()
                    };
                    out.push(FieldError::new(format!("{base}/{name}"), message));
                }
            }
            K::Constant { expected_value } if base == "/type" => {
                out.push(FieldError::new(base, format!("must be {expected_value}")));
            }
            K::Enum { options } if base == "/type" => {
                let given = value.get("type").and_then(Value::as_str).unwrap_or("");
                out.push(FieldError::new(
                    base,
                    format!("unknown event type {given:?}; expected one of {options}"),
                ));
            }
            K::Format { format } if format == "date-time" => {
                out.push(FieldError::new(
                    base,
                    "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-20T09:30:00Z",
                ));
            }
            _ => out.push(FieldError::new(base, e.to_string())),
        }
    }
    out
}

fn check_identity(id: &mut Identity, path: String, errors: &mut Vec<FieldError>) {
    if let Err(message) = id.normalize() {
        errors.push(FieldError::new(format!("{path}/value"), message));
    }
}

fn check_opt(id: &mut Option<Identity>, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(id) = id {
        check_identity(id, path.to_string(), errors);
    }
}

/// Normalises every identity in place; checks the cross-field rules.
fn normalize_and_check(event: &mut Event) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let customer = event.customer_id.clone();
    match &mut event.data {
        EventData::CustomerRegistered(d) => {
            for (i, id) in d.identities.iter_mut().enumerate() {
                check_identity(id, format!("/data/identities/{i}"), &mut errors);
            }
        }
        EventData::CustomerIdentityAdded(CustomerIdentityAdded { identity, .. })
        | EventData::CustomerIdentityRemoved(CustomerIdentityRemoved { identity, .. }) => {
            check_identity(identity, "/data/identity".into(), &mut errors);
        }
        EventData::CustomerMerged(d) | EventData::CustomerUnmerged(d)
            if customer.as_deref() == Some(d.merged_customer_id.as_str()) =>
        {
            errors.push(FieldError::new(
                "/data/merged_customer_id",
                "must differ from customer_id (the survivor)",
            ));
        }
        EventData::InteractionStarted(d) => {
            check_opt(&mut d.from, "/data/from", &mut errors);
            check_opt(&mut d.to, "/data/to", &mut errors);
        }
        EventData::InteractionRecorded(d) => {
            check_opt(&mut d.from, "/data/from", &mut errors);
            check_opt(&mut d.to, "/data/to", &mut errors);
            if let Some(end) = d.ended_at {
                if end < event.occurred_at {
                    errors.push(FieldError::new(
                        "/data/ended_at",
                        "must not be before occurred_at (the start)",
                    ));
                }
            }
        }
        EventData::CampaignCreated(d) => {
            if let (Some(s), Some(e)) = (d.starts_at, d.ends_at) {
                if e < s {
                    errors.push(FieldError::new(
                        "/data/ends_at",
                        "must not be before starts_at",
                    ));
                }
            }
        }
        EventData::CampaignContactAdded(d) => {
            check_opt(&mut d.identity, "/data/identity", &mut errors)
        }
        EventData::CampaignAttemptMade(d) => {
            check_opt(&mut d.identity, "/data/identity", &mut errors)
        }
        _ => {}
    }
    errors
}
