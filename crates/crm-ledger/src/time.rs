//! Times given on the command line.

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};

/// Parses an RFC 3339 time, naming the flag when it cannot.
pub fn parse(flag: &str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            anyhow!(
                "--{flag}: {value:?} is not an RFC 3339 time such as 2026-11-20T09:30:00Z ({e})"
            )
        })
}

/// Parses an optional time.
pub fn parse_opt(flag: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    value.map(|v| parse(flag, v)).transpose()
}
