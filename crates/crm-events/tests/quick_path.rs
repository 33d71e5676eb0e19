//! The quick path of ingest validation (JSON text straight to the typed
//! event) must never accept what the full path (JSON Schema over a
//! `serde_json::Value`, then the typed event) rejects, and must return the
//! same event when it accepts. These tests hold it to that:
//!
//! * for every type and version, a minimal and a maximal event built from
//!   its schema, and every mutation the schema suggests at every field
//!   (lengths one past each limit in multi-byte characters, numbers past
//!   each bound, each enum value, `null`, other types, the object as an
//!   array, the enum as a map, unknown fields, deep nesting, loose times);
//! * the demo history, unchanged (the quick path must take it all) and with
//!   random changes (proptest).
//!
//! A mutation the full path rejects and the quick path accepts fails the
//! test; so does a quick path that takes too little to be worth having.

use std::sync::OnceLock;

use crm_events::schema;
use crm_events::{Event, FieldError, Validator};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(Validator::new)
}

/// Both paths on one text. Panics when the quick path accepts and the full
/// path does not, or returns another event; returns whether the quick path
/// accepted and whether the full path did.
fn check(text: &str) -> (bool, bool) {
    let (full, quick): (Result<Event, Vec<FieldError>>, Option<Event>) =
        validator().both_paths(text.as_bytes());
    match (&full, &quick) {
        (Ok(f), Some(q)) => assert_eq!(f, q, "the paths disagree on {text}"),
        (Err(e), Some(q)) => {
            panic!("the quick path accepted what the full path rejects ({e:?}): {text}\n{q:?}")
        }
        _ => {}
    }
    (quick.is_some(), full.is_ok())
}

// -------------------------------------------------------- events from schemas

fn types_of(s: &Value) -> Vec<&str> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// A valid value for schema `s`: required properties only, or every one.
fn sample(s: &Value, every: bool) -> Value {
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(e) = s.get("enum") {
        return e[0].clone();
    }
    let ty = types_of(s)
        .into_iter()
        .find(|t| *t != "null")
        .unwrap_or("object");
    match ty {
        "string" if s.get("format").and_then(Value::as_str) == Some("date-time") => {
            json!("2026-11-20T09:30:00Z")
        }
        "string" => {
            let min = s
                .get("minLength")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            json!("x".repeat(min as usize))
        }
        "integer" => json!(s
            .get("minimum")
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
            .max(1.0) as u64),
        "number" => json!(s.get("minimum").and_then(Value::as_f64).unwrap_or(0.0) + 1.5),
        "boolean" => json!(true),
        "array" => json!([sample(&s["items"], every)]),
        _ => {
            let mut out = Map::new();
            let required: Vec<&str> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (name, p) in props {
                    if every || required.contains(&name.as_str()) {
                        out.insert(name.clone(), sample(p, every));
                    }
                }
            }
            if every && s.get("additionalProperties") == Some(&json!(true)) {
                out.insert(
                    "custom".into(),
                    json!({"nested": [1, "two", {"three": null}]}),
                );
            }
            Value::Object(out)
        }
    }
}

fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for i in 0..levels {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "k": v })
        };
    }
    v
}

fn chars(c: char, n: u64) -> Value {
    Value::String(std::iter::repeat_n(c, n as usize).collect())
}

/// Loose and edge-case times: forms chrono reads that the schema does not,
/// and the reverse.
fn times() -> Vec<Value> {
    [
        "2026-11-20T09:30:00Z",
        "2026-11-20T09:30:00.123456789+05:30",
        "2026-11-20T09:30:00.1234567891Z",
        "2026-11-20 09:30:00Z",
        "2026-11-20t09:30:00z",
        "2026-11-20T09:30:00+0100",
        "2026-11-20T09:30:00+01",
        "2026-11-20T09:30:00+24:00",
        "2026-11-20T09:30:00-00:00",
        "2026-11-20T09:30:60Z",
        "2026-12-31T23:59:60Z",
        "2026-02-29T09:30:00Z",
        "2024-02-29T09:30:00Z",
        "2026-11-20T24:00:00Z",
        "2026-11-20T09:30:00.Z",
        "2026-11-20T09:30:00",
        "2026-11-20",
        " 2026-11-20T09:30:00Z",
        "2026-11-20T09:30:00Z ",
        "0000-01-01T00:00:00Z",
        "+2026-11-20T09:30:00Z",
    ]
    .iter()
    .map(|t| json!(t))
    .collect()
}

/// Values to put in place of `v`, whose schema is `s`.
fn replacements(v: &Value, s: &Value) -> Vec<Value> {
    let mut out = vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("x"),
        json!([]),
        json!({}),
        json!({ "phone": null }),
        json!([v.clone()]),
        json!({ "k": v.clone() }),
        nested(40),
    ];
    if let Value::Object(m) = v {
        out.push(Value::Array(m.values().cloned().collect()));
    }
    if let Value::String(text) = v {
        out.push(json!({ text.clone(): null }));
    }
    for key in ["maxLength", "minLength"] {
        if let Some(n) = s.get(key).and_then(Value::as_u64) {
            for n in [n.saturating_sub(1), n, n + 1] {
                out.push(chars('é', n));
                out.push(chars('a', n));
            }
        }
    }
    for key in ["minimum", "maximum"] {
        if let Some(n) = s.get(key).and_then(Value::as_f64) {
            for x in [n - 1.0, n - 0.5, n, n + 0.5, n + 1.0] {
                out.push(json!(x));
                if x.fract() == 0.0 {
                    out.push(json!(x as i64));
                }
            }
        }
    }
    if let Some(n) = s.get("maxItems").and_then(Value::as_u64) {
        if let Some(first) = v.as_array().and_then(|a| a.first()) {
            for n in [n, n + 1] {
                out.push(Value::Array(vec![first.clone(); n as usize]));
            }
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        out.extend(e.iter().cloned());
        out.push(json!("not-one-of-them"));
    }
    if s.get("format").and_then(Value::as_str) == Some("date-time") {
        out.extend(times());
    }
    out.push(json!(4_294_967_296u64));
    out
}

/// Every mutation of `v` (schema `s`) at every depth: `f` gets each mutated
/// whole event.
fn mutate(root: &Value, at: &[PathStep], v: &Value, s: &Value, f: &mut dyn FnMut(Value)) {
    for r in replacements(v, s) {
        f(replace(root, at, Some(r)));
    }
    match v {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            for (name, child) in m {
                let mut path = at.to_vec();
                path.push(PathStep::Key(name.clone()));
                f(replace(root, &path, None));
                let cs = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                mutate(root, &path, child, cs, f);
            }
            let mut path = at.to_vec();
            for (key, value) in [
                ("zz_unknown", json!(1)),
                ("recorded_at", json!("2026-11-20T09:30:00Z")),
                ("position", json!(7)),
                ("zz_deep", nested(40)),
            ] {
                path.push(PathStep::Key(key.into()));
                f(replace(root, &path, Some(value)));
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let mut path = at.to_vec();
                path.push(PathStep::Index(i));
                mutate(
                    root,
                    &path,
                    child,
                    s.get("items").unwrap_or(&Value::Null),
                    f,
                );
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// `root` with the value at `path` replaced (or removed, for `None`).
fn replace(root: &Value, path: &[PathStep], with: Option<Value>) -> Value {
    if path.is_empty() {
        return with.unwrap_or(Value::Null);
    }
    let mut out = root.clone();
    let mut cur = &mut out;
    for step in &path[..path.len() - 1] {
        cur = match step {
            PathStep::Key(k) => &mut cur[k.as_str()],
            PathStep::Index(i) => &mut cur[*i],
        };
    }
    match (path.last().expect("a path"), with) {
        (PathStep::Key(k), Some(w)) => {
            cur[k.as_str()] = w;
        }
        (PathStep::Key(k), None) => {
            cur.as_object_mut().expect("an object").remove(k);
        }
        (PathStep::Index(i), Some(w)) => cur[*i] = w,
        (PathStep::Index(i), None) => {
            cur.as_array_mut().expect("an array").remove(*i);
        }
    }
    out
}

#[test]
fn the_quick_path_never_accepts_what_the_schema_rejects() {
    let mut tried = 0usize;
    let mut rejected = 0usize;
    let mut quick_took = 0usize;
    for file in schema::all().into_iter().skip(1) {
        let s = &file.schema;
        for every in [false, true] {
            let base = sample(s, every);
            let text = base.to_string();
            let (quick, full) = check(&text);
            assert!(full, "{}: the sample is invalid: {text}", file.file_name);
            // The quick path must take every plain event, or it is not worth
            // having.
            assert!(quick, "{}: {text}", file.file_name);
            mutate(&base, &[], &base, s, &mut |m| {
                let (quick, full) = check(&m.to_string());
                tried += 1;
                rejected += usize::from(!full);
                quick_took += usize::from(quick);
            });
        }
    }
    // Enough of the mutations are invalid for the test to mean something,
    // and the quick path takes some of the valid ones.
    eprintln!("{tried} mutations, {rejected} rejected by the full path, {quick_took} taken by the quick path");
    assert!(tried > 10_000, "{tried} mutations");
    assert!(rejected > tried / 2, "{rejected} of {tried} rejected");
    assert!(
        quick_took > tried / 20,
        "the quick path took {quick_took} of {tried}"
    );
}

// ----------------------------------------------------------- the demo history

fn demo_events() -> &'static Vec<String> {
    static EVENTS: OnceLock<Vec<String>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let mut out = Vec::new();
        crm_demo::generate(&crm_demo::DemoConfig::new(300, 20, 7), |v| {
            out.push(serde_json::to_string(&v).expect("serialises"));
        });
        out
    })
}

#[test]
fn the_quick_path_takes_the_whole_demo_history() {
    let events = demo_events();
    assert!(events.len() > 5_000, "{} events", events.len());
    for text in events {
        let (quick, full) = check(text);
        assert!(full && quick, "quick {quick}, full {full}: {text}");
    }
}

/// Every location in `v`, as a path.
fn locations(v: &Value, at: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                at.push(PathStep::Key(k.clone()));
                out.push(at.clone());
                locations(c, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                at.push(PathStep::Index(i));
                out.push(at.clone());
                locations(c, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn pool() -> Vec<Value> {
    let mut out = replacements(&json!("x"), &json!({"maxLength": 256, "minLength": 1}));
    out.extend(times());
    out.extend(
        [
            "phone",
            "email",
            "completed",
            "callback_requested",
            "customer.registered",
            "case.opened",
        ]
        .map(|s| json!(s)),
    );
    out.extend([
        json!(128),
        json!(1.0),
        json!(-0.0),
        json!(1e300),
        chars('é', 129),
        chars('é', 257),
    ]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Random changes to demo events: one to three locations replaced or
    /// removed.
    #[test]
    fn random_changes_to_demo_events_never_pass_only_the_quick_path(
        pick in any::<prop::sample::Index>(),
        changes in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>()), 1..4),
    ) {
        let events = demo_events();
        let text: &String = pick.get(events.as_slice());
        let mut v: Value = serde_json::from_str(text).expect("demo JSON");
        let pool = pool();
        for (at, with, remove) in changes {
            let mut all = Vec::new();
            locations(&v, &mut Vec::new(), &mut all);
            let path = at.get(&all).clone();
            v = replace(&v, &path, if remove { None } else { Some(with.get(&pool).clone()) });
        }
        check(&v.to_string());
    }
}

#[test]
fn texts_that_are_not_plain_objects_take_the_full_path() {
    for text in [
        "[]",
        "null",
        // The envelope's fields in order, as serde reads a struct from an
        // array.
        r#"["e-1","case.closed",1,"2026-11-20T09:30:00Z","crm","c","i","k-1","m","a","r","s",{}]"#,
        r#" ["e-1","case.closed",1,"2026-11-20T09:30:00Z","crm","c","i","k-1","m","a","r","s",{}]"#,
        r#"{"event_id":"e-1","type":"case.closed","occurred_at":"2026-11-20T09:30:00Z","source":"crm","case_id":"k-1","data":{}} x"#,
        r#"{"event_id":"e-1","event_id":"e-2","type":"case.closed","occurred_at":"2026-11-20T09:30:00Z","source":"crm","case_id":"k-1","data":{}}"#,
        r#"{"event_id":"e-1","type":"case.closed","occurred_at":"2026-11-20T09:30:00Z","source":"crm","case_id":"k-1","data":[]}"#,
        r#"{"event_id":"e-1","type":"case.closed","occurred_at":"2026-11-20T09:30:00Z","source":"crm","case_id":"k-1","data":{},"data":{}}"#,
    ] {
        let (quick, _) = check(text);
        assert!(!quick, "{text}");
    }
    // And a plain one takes the quick path.
    let plain = r#"{"event_id":"e-1","type":"case.closed","occurred_at":"2026-11-20T09:30:00Z","source":"crm","case_id":"k-1","data":{}}"#;
    assert_eq!(check(plain), (true, true));
}
