//! Access control and request-rate limits: an axum middleware that runs
//! before routing, so a 401, 403 or 429 never depends on whether an id
//! exists.
//!
//! ## Keys and roles
//! A client sends `Authorization: Bearer KEY`. Keys are never kept in
//! plaintext: a keys file (`serve --api-keys FILE`) holds lines
//! `ROLE HASH [NAME]`, where HASH is the hex BLAKE3 of the key (optionally
//! written `blake3:HEX`); `CRM_LEDGER_API_KEYS=role:key,role:key` (for
//! containers) is hashed at load and the plaintext dropped. A presented key
//! is hashed and compared with *every* stored hash in constant time.
//!
//! | role | reaches |
//! |---|---|
//! | `publisher` | `POST /v1/events` |
//! | `reader` | the `GET` query routes and `GET /v1/projections` |
//! | `admin` | everything (dead letters, rebuild, anything not listed) |
//! | no key | `/healthz`, `/readyz`, `/openapi.json` |
//! | any valid key | `/metrics` |
//!
//! Routing is deny-by-default: a path or method that is not in
//! [`required`]'s table needs `admin`. The same key may be listed on several
//! lines with several roles; it then has all of them.
//!
//! ## Rate limits
//! With `--rate-limit N` (requests per second, 0 = off, the default) each
//! key, or each client IP address when authentication is off (and for
//! requests whose key was refused), has a token bucket of `--rate-burst`
//! requests refilled at N per second. An empty bucket answers 429 with
//! `Retry-After`. `/healthz` and `/readyz` are never limited.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Environment variable of the inline keys (`role:key,role:key`).
pub const KEYS_ENV: &str = "CRM_LEDGER_API_KEYS";

/// Shortest key accepted in `CRM_LEDGER_API_KEYS` (keys must be random;
/// `crm-ledger keys new` makes 256-bit ones).
pub const MIN_KEY_LEN: usize = 16;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `POST /v1/events`.
    Publisher,
    /// The query routes.
    Reader,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Publisher, Role::Reader, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Role::Publisher => 1,
            Role::Reader => 2,
            Role::Admin => 4,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "publisher" => Ok(Role::Publisher),
            "reader" => Ok(Role::Reader),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}; expected publisher, reader or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hex BLAKE3 of a key: what a keys file stores.
pub fn hash_key(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let hex = text.strip_prefix("blake3:").unwrap_or(text);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a hex BLAKE3 hash (64 hex digits); `crm-ledger keys hash` prints one"
        ));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).expect("64 hex digits");
    Ok(out)
}

/// Compares two hashes without an early exit.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for i in 0..32 {
        diff |= std::hint::black_box(a[i] ^ b[i]);
    }
    std::hint::black_box(diff) == 0
}

#[derive(Clone)]
struct KeyEntry {
    role: Role,
    hash: [u8; 32],
    name: String,
}

/// The configured keys, hashed.
#[derive(Clone, Default)]
pub struct KeySet {
    entries: Vec<KeyEntry>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.entries.len())
            .finish()
    }
}

/// Who a request is, once its key was recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name (from the keys file), for logs.
    pub name: String,
    roles: u8,
    /// A short id of the key (a prefix of its hash) for its rate bucket.
    bucket: String,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles & (role.bit() | Role::Admin.bit()) != 0
    }

    /// The roles, for messages (`reader+publisher`).
    pub fn roles(&self) -> String {
        Role::ALL
            .iter()
            .filter(|r| self.roles & r.bit() != 0)
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }
}

impl KeySet {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds one key given in plaintext (hashed here; the plaintext is not kept).
    pub fn add_plain(&mut self, role: Role, key: &str, name: &str) {
        self.entries.push(KeyEntry {
            role,
            hash: *blake3::hash(key.as_bytes()).as_bytes(),
            name: name.to_string(),
        });
    }

    /// Parses a keys file: lines `ROLE HASH [NAME]`; `#` starts a comment.
    /// Errors name the line.
    pub fn parse_file(text: &str, origin: &str) -> Result<KeySet, String> {
        let mut set = KeySet::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(role), Some(hash)) = (words.next(), words.next()) else {
                return Err(format!(
                    "{origin} line {}: expected `ROLE HASH [NAME]`",
                    i + 1
                ));
            };
            let role: Role = role
                .parse()
                .map_err(|e| format!("{origin} line {}: {e}", i + 1))?;
            let hash = parse_hash(hash).map_err(|e| format!("{origin} line {}: {e}", i + 1))?;
            let name = words.collect::<Vec<_>>().join(" ");
            let name = if name.is_empty() {
                format!("{origin}:{}", i + 1)
            } else {
                name
            };
            set.entries.push(KeyEntry { role, hash, name });
        }
        Ok(set)
    }

    /// Reads a keys file.
    pub fn load_file(path: &Path) -> Result<KeySet, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the API keys file {}: {e}", path.display()))?;
        let set = KeySet::parse_file(&text, &path.display().to_string())?;
        if set.is_empty() {
            return Err(format!(
                "the API keys file {} holds no key (lines `ROLE HASH [NAME]`)",
                path.display()
            ));
        }
        Ok(set)
    }

    /// Parses `role:key,role:key` (the value of `CRM_LEDGER_API_KEYS`);
    /// every key is hashed at once. Errors never repeat a key.
    pub fn parse_inline(spec: &str) -> Result<KeySet, String> {
        let mut set = KeySet::default();
        for (i, item) in spec.split(',').enumerate() {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((role, key)) = item.split_once(':') else {
                return Err(format!("{KEYS_ENV} item {}: expected ROLE:KEY", i + 1));
            };
            let role: Role = role
                .parse()
                .map_err(|e| format!("{KEYS_ENV} item {}: {e}", i + 1))?;
            let key = key.trim();
            if key.len() < MIN_KEY_LEN {
                return Err(format!(
                    "{KEYS_ENV} item {}: the key is shorter than {MIN_KEY_LEN} characters; use random keys (`crm-ledger keys new`)",
                    i + 1
                ));
            }
            set.add_plain(role, key, &format!("{KEYS_ENV}#{}", i + 1));
        }
        Ok(set)
    }

    pub fn extend(&mut self, other: KeySet) {
        self.entries.extend(other.entries);
    }

    /// The principal of a presented key, or `None`. The hash of the key is
    /// compared with every stored hash, each in constant time, without an
    /// early exit.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let hash = *blake3::hash(presented.as_bytes()).as_bytes();
        let mut roles = 0u8;
        let mut name: Option<&str> = None;
        for e in &self.entries {
            if ct_eq(&hash, &e.hash) {
                roles |= e.role.bit();
                name.get_or_insert(&e.name);
            }
        }
        name.map(|n| Principal {
            name: n.to_string(),
            roles,
            bucket: blake3::Hash::from(hash).to_hex()[..16].to_string(),
        })
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key: health, readiness, the OpenAPI description.
    Open,
    /// Any valid key, whatever its role.
    AnyKey,
    /// A key with this role (or `admin`).
    Role(Role),
}

/// Routes readers reach (method `GET`/`HEAD`). `{}` matches one segment.
const READER_ROUTES: &[&str] = &[
    "/v1/customers/{}",
    "/v1/customers/{}/timeline",
    "/v1/lookup",
    "/v1/interactions",
    "/v1/interactions/{}",
    "/v1/cases",
    "/v1/cases/{}",
    "/v1/campaigns/{}",
    "/v1/campaigns/{}/contacts",
    "/v1/campaigns/{}/contacts/{}",
    "/v1/campaigns/{}/violations",
    "/v1/projections",
];

fn matches(template: &str, path: &str) -> bool {
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some("{}"), Some(seg)) if !seg.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// What `method path` needs. Deny by default: anything not listed needs
/// `admin` (dead letters, rebuild, replay, and routes added later).
pub fn required(method: &Method, path: &str) -> Access {
    match path {
        "/healthz" | "/readyz" | "/openapi.json" => return Access::Open,
        "/metrics" => return Access::AnyKey,
        _ => {}
    }
    let read = method == Method::GET || method == Method::HEAD;
    if method == Method::POST && path == "/v1/events" {
        return Access::Role(Role::Publisher);
    }
    if read && READER_ROUTES.iter().any(|t| matches(t, path)) {
        return Access::Role(Role::Reader);
    }
    Access::Role(Role::Admin)
}

/// A token-bucket setting: `per_second` refill, `burst` capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Most buckets kept; past it, full idle ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

/// Authentication and rate limits of a router.
pub struct Security {
    keys: Option<KeySet>,
    rate: Option<RateLimit>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("keys", &self.keys)
            .field("rate", &self.rate)
            .finish()
    }
}

impl Security {
    /// No authentication, no rate limit (tests, loopback).
    pub fn open() -> Security {
        Security::new(None, None)
    }

    /// `keys` None or empty: authentication off. `rate` None or a rate of 0:
    /// no limit.
    pub fn new(keys: Option<KeySet>, rate: Option<RateLimit>) -> Security {
        Security {
            keys: keys.filter(|k| !k.is_empty()),
            rate: rate.filter(|r| r.per_second > 0.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn auth_enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// Takes a token from `who`'s bucket; `Err(seconds)` to wait when empty.
    fn take(&self, who: &str) -> Result<(), u32> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let burst = rate.burst.max(1.0);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("lock");
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(who) {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second < burst
            });
        }
        let b = buckets.entry(who.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / rate.per_second).ceil();
            Err(wait.clamp(1.0, 3600.0) as u32)
        }
    }
}

fn client_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "local".to_string())
}

fn bearer(req: &Request) -> Result<Option<&str>, ()> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?.trim();
    let (scheme, key) = value.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(());
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(());
    }
    Ok(Some(key))
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"crm-ledger\""),
    );
    resp
}

fn too_many(who_kind: &str, seconds: u32) -> Response {
    metrics::counter!("crm_http_rate_limited_total").increment(1);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests for this {who_kind}; retry after {seconds} s"),
    );
    e.retry_after = Some(seconds);
    e.into_response()
}

/// The middleware: authentication, role check, rate limit, then the route;
/// every answer is counted in `crm_http_responses_total{status}`.
pub async fn middleware(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    let resp = guard(&sec, req, next).await;
    metrics::counter!("crm_http_responses_total", "status" => resp.status().as_str().to_string())
        .increment(1);
    resp
}

async fn guard(sec: &Security, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    let access = required(req.method(), path);
    let keys = match &sec.keys {
        Some(keys) if access != Access::Open => keys,
        // Open routes, or authentication off (loopback only): limit per
        // client address.
        _ => {
            if let Err(s) = sec.take(&format!("ip:{}", client_ip(&req))) {
                return too_many("client address", s);
            }
            return next.run(req).await;
        }
    };
    let refused = |reason: &'static str, message: &str| {
        metrics::counter!("crm_http_auth_failures_total", "reason" => reason).increment(1);
        // Failed attempts count against the client address (key guessing).
        if let Err(s) = sec.take(&format!("ip:{}", client_ip(&req))) {
            return too_many("client address", s);
        }
        unauthorized(message)
    };
    let principal = match bearer(&req) {
        Ok(Some(key)) => keys.authenticate(key),
        Ok(None) => {
            return refused(
                "missing",
                "this route needs an API key: send Authorization: Bearer KEY",
            )
        }
        Err(()) => return refused("malformed", "the Authorization header must be `Bearer KEY`"),
    };
    let Some(p) = principal else {
        tracing::warn!(method = %req.method(), path, "request with an unknown API key refused");
        return refused("invalid", "the API key is not valid");
    };
    if let Access::Role(role) = access {
        if !p.has(role) {
            metrics::counter!("crm_http_auth_failures_total", "reason" => "forbidden").increment(1);
            tracing::warn!(key = %p.name, method = %req.method(), path, needs = %role, "request refused: role");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this API key ({}) may not use {} on this route; it needs the {role} role",
                    p.roles(),
                    req.method()
                ),
            )
            .into_response();
        }
    }
    tracing::Span::current().record("key", p.name.as_str());
    if let Err(s) = sec.take(&format!("key:{}", p.bucket)) {
        return too_many("API key", s);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_parse_and_errors_name_the_line() {
        let h = hash_key("secret-key-0123456789");
        let text = format!("# comment\n\nreader {h} dashboards\nadmin blake3:{h}\n");
        let set = KeySet::parse_file(&text, "keys").unwrap();
        assert_eq!(set.len(), 2);
        let p = set.authenticate("secret-key-0123456789").unwrap();
        assert_eq!(p.name, "dashboards");
        assert!(p.has(Role::Reader) && p.has(Role::Publisher) && p.has(Role::Admin));
        assert!(set.authenticate("secret-key-012345678").is_none());
        let e = KeySet::parse_file("reader abc\n", "keys").unwrap_err();
        assert!(e.contains("keys line 1") && e.contains("hex"), "{e}");
        let e = KeySet::parse_file(&format!("\nroot {h}\n"), "k").unwrap_err();
        assert!(e.contains("k line 2") && e.contains("unknown role"), "{e}");
    }

    #[test]
    fn inline_keys_are_hashed_and_must_be_long() {
        let set =
            KeySet::parse_inline("publisher:aaaaaaaaaaaaaaaa1, reader:bbbbbbbbbbbbbbbb2").unwrap();
        let p = set.authenticate("aaaaaaaaaaaaaaaa1").unwrap();
        assert!(p.has(Role::Publisher) && !p.has(Role::Reader));
        let e = KeySet::parse_inline("reader:tiny9").unwrap_err();
        assert!(!e.contains("tiny9"), "the key is not repeated: {e}");
        assert!(KeySet::parse_inline("reader").is_err());
    }

    #[test]
    fn route_table_is_deny_by_default() {
        use Access::*;
        let get = Method::GET;
        assert_eq!(
            required(&Method::POST, "/v1/events"),
            Role(super::Role::Publisher)
        );
        assert_eq!(required(&get, "/v1/events"), Role(super::Role::Admin));
        assert_eq!(required(&get, "/v1/customers/x"), Role(super::Role::Reader));
        assert_eq!(required(&get, "/v1/customers/"), Role(super::Role::Admin));
        assert_eq!(
            required(&get, "/v1/customers/x/y"),
            Role(super::Role::Admin)
        );
        assert_eq!(required(&get, "/v1/dead-letters"), Role(super::Role::Admin));
        assert_eq!(
            required(&get, "/v1/dead%2Dletters"),
            Role(super::Role::Admin)
        );
        assert_eq!(
            required(&Method::POST, "/v1/projections/cases/rebuild"),
            Role(super::Role::Admin)
        );
        assert_eq!(
            required(&Method::DELETE, "/v1/cases/c1"),
            Role(super::Role::Admin)
        );
        assert_eq!(required(&get, "/healthz"), Open);
        assert_eq!(required(&get, "/metrics"), AnyKey);
    }

    #[test]
    fn token_bucket_refuses_past_the_burst_and_says_when() {
        let sec = Security::new(
            None,
            Some(RateLimit {
                per_second: 0.5,
                burst: 2.0,
            }),
        );
        assert!(sec.take("a").is_ok());
        assert!(sec.take("a").is_ok());
        assert_eq!(sec.take("a"), Err(2));
        assert!(sec.take("b").is_ok(), "buckets are per client");
    }
}
