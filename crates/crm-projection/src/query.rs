//! Shared pieces of the query side: pages, opaque cursors, query errors.

use serde::Serialize;

use crate::StoreError;

/// Default page size (api.md).
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size (api.md).
pub const MAX_LIMIT: usize = 1000;

/// A failed query, mapped to an HTTP status by the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// 400: a malformed or tampered parameter (e.g. a cursor).
    #[error("{param}: {message}")]
    BadRequest { param: String, message: String },
    /// 422: a well-formed parameter with an unacceptable value.
    #[error("{param}: {message}")]
    Invalid { param: String, message: String },
    /// 500: the store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    pub fn bad_request(param: &str, message: impl Into<String>) -> Self {
        QueryError::BadRequest {
            param: param.into(),
            message: message.into(),
        }
    }
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        QueryError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}

impl From<serde_json::Error> for QueryError {
    fn from(e: serde_json::Error) -> Self {
        QueryError::Store(StoreError(format!("undecodable value: {e}")))
    }
}

/// A page of a list (api.md): `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Checks a requested `limit`: default 50, 1 to 1000, else 422.
pub fn limit(requested: Option<usize>) -> Result<usize, QueryError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(QueryError::invalid(
            "limit",
            format!("{n} is out of range: 1 to {MAX_LIMIT}"),
        )),
    }
}

const CURSOR_KEY: [u8; 32] = *b"crm-ledger cursor integrity v1.0";

fn mac(scope: &str, position: &[u8]) -> String {
    let mut h = blake3::Hasher::new_keyed(&CURSOR_KEY);
    h.update(&(scope.len() as u64).to_le_bytes());
    h.update(scope.as_bytes());
    h.update(position);
    h.finalize().to_hex()[..16].to_string()
}

/// Encodes a resume position (usually the last key of a page) as an opaque
/// cursor bound to `scope` (e.g. `timeline/c-1`): a cursor edited by hand, or
/// taken from another list, does not decode.
pub fn encode_cursor(scope: &str, position: &[u8]) -> String {
    format!("{}.{}", hex::encode(position), mac(scope, position))
}

/// Decodes a cursor made by [`encode_cursor`] for the same scope; anything
/// else is a 400 naming `cursor`.
pub fn decode_cursor(scope: &str, cursor: &str) -> Result<Vec<u8>, QueryError> {
    let bad = || QueryError::bad_request("cursor", "is not a cursor this list handed out");
    let (pos, tag) = cursor.split_once('.').ok_or_else(bad)?;
    let position = hex::decode(pos).map_err(|_| bad())?;
    if mac(scope, &position) != tag {
        return Err(bad());
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_detect_tampering() {
        let c = encode_cursor("timeline/c-1", b"t/c-1/2026");
        assert_eq!(decode_cursor("timeline/c-1", &c).unwrap(), b"t/c-1/2026");
        assert!(decode_cursor("timeline/c-2", &c).is_err(), "other scope");
        let mut tampered = c.clone();
        tampered.replace_range(0..2, "00");
        assert!(decode_cursor("timeline/c-1", &tampered).is_err());
        for junk in ["", ".", "zz.zz", "abc", "00.00"] {
            assert!(decode_cursor("timeline/c-1", junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn limits_default_and_bound() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some(1000)).unwrap(), 1000);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(1001)).is_err());
    }
}
