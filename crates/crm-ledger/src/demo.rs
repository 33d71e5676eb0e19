//! `crm-ledger demo`: a reproducible history as NDJSON.

use std::process::ExitCode;

use anyhow::{bail, Result};

pub fn demo(_args: crate::cli::DemoArgs) -> Result<ExitCode> {
    bail!("demo is not available yet")
}
