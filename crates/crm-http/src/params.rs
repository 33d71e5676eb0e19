//! Query-string parameters, parsed with errors that name the parameter.
//! Unknown parameters are refused (a typo must not silently widen a query).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::error::ApiError;

/// The query string of one request, checked against the names a route takes.
pub struct Params<'a> {
    q: &'a HashMap<String, String>,
}

impl<'a> Params<'a> {
    /// Refuses parameters the route does not take (400 naming them).
    pub fn new(q: &'a HashMap<String, String>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut unknown: Vec<&str> = q
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        unknown.sort_unstable();
        if let Some(first) = unknown.first() {
            return Err(ApiError::bad_param(
                first,
                format!(
                    "is not a parameter of this route; it takes: {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Params { q })
    }

    pub fn str(&self, name: &str) -> Option<&'a str> {
        self.q.get(name).map(String::as_str)
    }

    pub fn usize(&self, name: &str) -> Result<Option<usize>, ApiError> {
        self.str(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_param(name, format!("{v:?} is not a non-negative integer"))
                })
            })
            .transpose()
    }

    pub fn u32(&self, name: &str) -> Result<Option<u32>, ApiError> {
        self.str(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_param(name, format!("{v:?} is not a non-negative integer"))
                })
            })
            .transpose()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.str(name)
            .map(|v| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_param(
                    name,
                    format!("{v:?} is not true or false"),
                )),
            })
            .transpose()
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.str(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad_param(
                            name,
                            format!(
                                "{v:?} is not an RFC 3339 timestamp, e.g. 2026-11-20T09:30:00Z"
                            ),
                        )
                    })
            })
            .transpose()
    }

    /// A value from a fixed set.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<&'a str>, ApiError> {
        match self.str(name) {
            Some(v) if !allowed.contains(&v) => Err(ApiError::invalid_param(
                name,
                format!("{v:?} is not one of: {}", allowed.join(", ")),
            )),
            other => Ok(other),
        }
    }
}
