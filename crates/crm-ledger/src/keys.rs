//! `crm-ledger keys`: make a random API key, or hash one, for the keys file
//! of `serve --api-keys FILE` (lines `ROLE HASH [NAME]`).

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use crm_http::auth::{hash_key, Role};
use rand::RngCore;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a fresh random key (line 1: give it to the client; it is stored
    /// nowhere) and its line for the keys file (line 2).
    New {
        /// publisher, reader or admin.
        #[arg(long)]
        role: Role,
        /// A name for the key, shown in the server's logs.
        #[arg(long)]
        name: Option<String>,
    },
    /// Read a key from standard input (one line) and print its hash, or its
    /// whole keys-file line with --role.
    Hash {
        /// Print `ROLE HASH [NAME]` instead of the hash alone.
        #[arg(long)]
        role: Option<Role>,
        /// A name for the key (with --role).
        #[arg(long)]
        name: Option<String>,
    },
}

/// A new key: `crm_` and 64 hex digits (256 random bits from the OS's
/// generator, through `rand`'s CSPRNG).
pub fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("crm_{}", hex::encode(bytes))
}

fn line(role: Role, hash: &str, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.trim().is_empty() => format!("{role} {hash} {}", n.trim()),
        _ => format!("{role} {hash}"),
    }
}

pub fn keys(args: KeysArgs) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.command {
        KeysCommand::New { role, name } => {
            let key = new_key();
            writeln!(out, "{key}")?;
            writeln!(out, "{}", line(role, &hash_key(&key), name.as_deref()))?;
            eprintln!("line 1: the key, for the client (Authorization: Bearer KEY); it is not stored anywhere");
            eprintln!("line 2: append it to the keys file of `serve --api-keys FILE`");
        }
        KeysCommand::Hash { role, name } => {
            let mut key = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut key)
                .context("reading the key from standard input")?;
            let key = key.trim_end_matches(['\r', '\n']);
            if key.is_empty() {
                bail!("no key on standard input");
            }
            let hash = hash_key(key);
            match role {
                Some(r) => writeln!(out, "{}", line(r, &hash, name.as_deref()))?,
                None => writeln!(out, "{hash}")?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The authentication and rate limits of `serve`: keys from `--api-keys
/// FILE` and `CRM_LEDGER_API_KEYS`. Without keys, only a loopback `--listen`
/// address is allowed.
pub fn security(args: &crate::cli::ServeArgs) -> Result<crm_http::auth::Security> {
    use crm_http::auth::{KeySet, RateLimit, Security, KEYS_ENV};
    let mut keys = KeySet::default();
    if let Some(path) = &args.api_keys {
        keys.extend(KeySet::load_file(path).map_err(anyhow::Error::msg)?);
    }
    if let Ok(spec) = std::env::var(KEYS_ENV) {
        keys.extend(KeySet::parse_inline(&spec).map_err(anyhow::Error::msg)?);
    }
    if !(args.rate_limit >= 0.0 && args.rate_limit.is_finite()) {
        bail!("--rate-limit must be a number of requests per second >= 0 (0: off)");
    }
    if !(args.rate_burst >= 1.0 && args.rate_burst.is_finite()) {
        bail!("--rate-burst must be at least 1");
    }
    let rate = (args.rate_limit > 0.0).then_some(RateLimit {
        per_second: args.rate_limit,
        burst: args.rate_burst,
    });
    if keys.is_empty() {
        if !args.listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {}: no API keys are configured (--api-keys FILE or \
                 {KEYS_ENV}), and without keys crm-ledger serves loopback addresses only \
                 (e.g. --listen 127.0.0.1:8080). Make keys with `crm-ledger keys new --role ROLE`.",
                args.listen
            );
        }
        tracing::warn!(
            listen = %args.listen,
            "authentication is off (no API keys configured): listening on loopback only"
        );
    } else {
        tracing::info!(keys = keys.len(), "authentication on: API keys loaded");
    }
    if let Some(r) = rate {
        tracing::info!(
            per_second = r.per_second,
            burst = r.burst,
            "rate limit on, per API key (per client address without keys)"
        );
    }
    Ok(Security::new(Some(keys), rate))
}
