//! JSON Schemas (draft 2020-12) generated from the typed catalog.
//!
//! `schemas/` in the repository holds exactly [`all`]: `envelope.json` plus one
//! file per event type and version (`interaction.started.v1.json`). Each
//! per-type schema is self-contained: the envelope with that type's required
//! ids and its `data` inlined, so an integrator can validate an event with any
//! draft 2020-12 validator and nothing else. `crm-ledger schemas --check DIR`
//! fails when the files drift from the code.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::event::EventType;

/// Envelope fields (events.md, "Envelope"). Only used to generate schemas;
/// the test `envelope_matches_event_serialisation` keeps it in step with
/// [`crate::Event`].
#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Envelope {
    /// Unique forever; the idempotency key. The same id with the same content
    /// is a harmless duplicate, with other content a conflict.
    #[schemars(length(min = 1, max = 128))]
    event_id: String,
    /// One of the catalog's types, e.g. `interaction.started`.
    #[serde(rename = "type")]
    event_type: String,
    /// Version of the type's `data` schema; 1 when absent.
    #[serde(default)]
    #[schemars(range(min = 1))]
    version: Option<u32>,
    /// When it happened in the world (event time): RFC 3339 with an offset.
    occurred_at: DateTime<Utc>,
    /// The publishing system, e.g. `pbx-east`, `mail-gateway`, `crm-ui`.
    #[schemars(length(min = 1, max = 128))]
    source: String,
    /// The customer, when known.
    #[serde(default)]
    #[schemars(with = "Id")]
    customer_id: Option<String>,
    /// The call, email, chat, SMS or social thread.
    #[serde(default)]
    #[schemars(with = "Id")]
    interaction_id: Option<String>,
    /// The case (a business request; not the same thing as a call).
    #[serde(default)]
    #[schemars(with = "Id")]
    case_id: Option<String>,
    /// The outbound or marketing campaign.
    #[serde(default)]
    #[schemars(with = "Id")]
    campaign_id: Option<String>,
    /// The contact-center agent who acted.
    #[serde(default)]
    #[schemars(with = "Id")]
    agent_id: Option<String>,
    /// Tracing across systems.
    #[serde(default)]
    #[schemars(with = "Id")]
    correlation_id: Option<String>,
    /// Tracing across systems.
    #[serde(default)]
    #[schemars(with = "Id")]
    causation_id: Option<String>,
    /// The type-specific fields.
    data: Map<String, Value>,
}

/// An id in the envelope: a non-empty string of at most 256 characters.
#[allow(dead_code)]
#[derive(JsonSchema)]
#[schemars(transparent)]
struct Id(#[schemars(length(min = 1, max = 256))] String);

/// One schema file: its name in `schemas/` and its content.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    pub file_name: String,
    pub schema: Value,
}

impl SchemaFile {
    /// The file's text as written to disk: pretty JSON with a final newline.
    pub fn text(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.schema).expect("schema serialises");
        s.push('\n');
        s
    }
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
}

/// The envelope schema, valid for any type (`type` is one of the catalog).
pub fn envelope() -> Value {
    let mut schema = generator().into_root_schema_for::<Envelope>().to_value();
    schema["$id"] = json!("urn:crm-ledger:schema:envelope");
    schema["title"] = json!("crm-ledger event envelope");
    schema["properties"]["type"] = json!({
        "description": "One of the catalog's types, e.g. `interaction.started`.",
        "type": "string",
        "enum": EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
    });
    schema["properties"]["version"] = json!({
        "description": "Version of the type's `data` schema; 1 when absent.",
        "type": "integer",
        "minimum": 1,
        "default": 1,
    });
    strip_nulls_from_ids(&mut schema);
    schema
}

/// The envelope never takes `null` for an id: an id is present or absent.
fn strip_nulls_from_ids(schema: &mut Value) {
    if let Some(props) = schema["properties"].as_object_mut() {
        for (name, prop) in props.iter_mut() {
            if name.ends_with("_id") && name != "event_id" {
                if let Some(obj) = prop.as_object_mut() {
                    obj.insert("type".into(), json!("string"));
                    obj.remove("default");
                }
            }
        }
    }
}

/// The self-contained schema of one type and version.
pub fn for_type(t: EventType, version: u32) -> Value {
    assert!(
        t.versions().contains(&version),
        "{t} has no version {version}"
    );
    let mut schema = envelope();
    schema["$id"] = json!(format!("urn:crm-ledger:schema:{}:v{version}", t.as_str()));
    schema["title"] = json!(format!("{} v{version}", t.as_str()));
    let mut data = crate::upcast::data_schema(t, version, &mut generator()).to_value();
    if let Some(obj) = data.as_object_mut() {
        obj.remove("$schema");
    }
    if let Some(d) = data.get("description").cloned() {
        schema["description"] = d;
    }
    let props = schema["properties"].as_object_mut().expect("object");
    props.insert("type".into(), json!({ "const": t.as_str() }));
    let version_schema = if version == 1 {
        json!({ "type": "integer", "const": 1, "description": "1, or absent." })
    } else {
        json!({ "type": "integer", "const": version })
    };
    props.insert("version".into(), version_schema);
    props.insert("data".into(), data);
    let required = schema["required"].as_array_mut().expect("required list");
    for id in t.required_ids() {
        required.push(json!(id.as_str()));
    }
    if version > 1 {
        required.push(json!("version"));
    }
    schema
}

/// Every schema file, envelope first, then the types in catalog order.
pub fn all() -> Vec<SchemaFile> {
    let mut files = vec![SchemaFile {
        file_name: "envelope.json".into(),
        schema: envelope(),
    }];
    for &t in EventType::ALL {
        for &v in t.versions() {
            files.push(SchemaFile {
                file_name: format!("{}.v{v}.json", t.as_str()),
                schema: for_type(t, v),
            });
        }
    }
    files
}

/// Compares what a directory holds (file name to parsed content) with
/// [`all`]; returns one line per difference, empty when they agree.
pub fn compare(found: &BTreeMap<String, Value>) -> Vec<String> {
    let expected = all();
    let mut problems = Vec::new();
    for f in &expected {
        match found.get(&f.file_name) {
            None => problems.push(format!("{}: missing", f.file_name)),
            Some(v) if *v != f.schema => problems.push(format!(
                "{}: differs from the schema generated from the code",
                f.file_name
            )),
            Some(_) => {}
        }
    }
    for name in found.keys() {
        if !expected.iter().any(|f| &f.file_name == name) {
            problems.push(format!("{name}: not a schema of the catalog"));
        }
    }
    problems
}

/// `docs/events.md`: the catalog as a reference page, generated from the
/// schemas (`crm-ledger schemas --docs`), so the page cannot drift.
pub fn markdown() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    out.push_str("# Event reference\n\n");
    out.push_str("Generated from the JSON Schemas in `schemas/` by `crm-ledger schemas --docs docs/events.md`; do not edit by hand.\n");
    out.push_str("The contract itself, with the rules behind these fields, is `shared/spec/events.md`; the choices made where it is silent are in `docs/contract-notes.md`.\n\n");
    out.push_str("## Envelope\n\n| field | type | required | description |\n|---|---|---|---|\n");
    let env = envelope();
    let required: Vec<&str> = env["required"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for (name, prop) in env["properties"].as_object().expect("properties") {
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} | {} |",
            type_of(prop),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            describe(prop)
        );
    }
    out.push_str("\nUnknown top-level fields are rejected; unknown fields inside `data` are kept. The ledger adds `recorded_at` when it appends.\n");
    for &t in EventType::ALL {
        for &v in t.versions() {
            let s = for_type(t, v);
            let _ = write!(out, "\n## `{}` (version {v})\n\n", t.as_str());
            let ids: Vec<&str> = t.required_ids().iter().map(|i| i.as_str()).collect();
            let _ = writeln!(
                out,
                "Stream: `{}`. Required ids: {}.\n",
                t.stream_kind().id_field().as_str(),
                ids.iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let data = &s["properties"]["data"];
            let req: Vec<&str> = data["required"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            match data["properties"].as_object() {
                Some(props) if !props.is_empty() => {
                    out.push_str(
                        "| `data` field | type | required | description |\n|---|---|---|---|\n",
                    );
                    for (name, prop) in props {
                        let _ = writeln!(
                            out,
                            "| `{name}` | {} | {} | {} |",
                            type_of(prop),
                            if req.contains(&name.as_str()) {
                                "yes"
                            } else {
                                ""
                            },
                            describe(prop)
                        );
                    }
                }
                _ => out.push_str("No `data` fields (send `{}`).\n"),
            }
            if data.get("then").is_some() {
                out.push_str(
                    "\n`callback_at` is required when `outcome` is `callback_requested`.\n",
                );
            }
        }
    }
    out
}

fn type_of(prop: &Value) -> String {
    if let Some(e) = prop.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .filter_map(Value::as_str)
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if let Some(c) = prop.get("const") {
        return format!("`{c}`");
    }
    let t = match prop.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => {
            if let Some(any) = prop.get("anyOf").and_then(Value::as_array) {
                return any
                    .iter()
                    .filter(|s| s.get("type") != Some(&json!("null")))
                    .map(type_of)
                    .collect::<Vec<_>>()
                    .join(" or ");
            }
            "any".into()
        }
    };
    match prop.get("format").and_then(Value::as_str) {
        Some("date-time") => "RFC 3339 time".into(),
        _ if t == "object" && prop.pointer("/properties/kind").is_some() => {
            "identity `{kind, value}`".into()
        }
        _ => t,
    }
}

fn describe(prop: &Value) -> String {
    let mut d = prop
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .replace('\n', " ");
    if let (Some(min), Some(max)) = (prop.get("minLength"), prop.get("maxLength")) {
        d = format!("{d} ({min}-{max} chars)").trim().to_string();
    }
    if let Some(min) = prop.get("minimum") {
        d = format!("{d} (at least {min})").trim().to_string();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_per_type_and_version_plus_the_envelope() {
        let files = all();
        let versions: usize = EventType::ALL.iter().map(|t| t.versions().len()).sum();
        assert_eq!(files.len(), 1 + versions);
        assert!(compare(
            &files
                .iter()
                .map(|f| (f.file_name.clone(), f.schema.clone()))
                .collect()
        )
        .is_empty());
    }

    #[test]
    fn compare_reports_missing_extra_and_changed_files() {
        let mut found: BTreeMap<String, Value> =
            all().into_iter().map(|f| (f.file_name, f.schema)).collect();
        found.remove("case.closed.v1.json");
        found.insert("case.deleted.v1.json".into(), json!({}));
        found.get_mut("envelope.json").unwrap()["title"] = json!("edited");
        let problems = compare(&found);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn per_type_schema_requires_the_stream_id_and_inlines_data() {
        let s = for_type(EventType::CampaignContactOutcome, 1);
        let req: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(req.contains(&"campaign_id") && req.contains(&"customer_id"));
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["properties"]["data"]["required"], json!(["outcome"]));
        assert!(s["properties"]["data"]["then"].is_object());
        assert!(
            !s.to_string().contains("$ref"),
            "schemas are self-contained"
        );
    }
}
