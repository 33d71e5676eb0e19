//! `crm-ledger replay`: the log's events, in log order, as NDJSON.
//!
//! Streams with constant memory whatever the log's size. The embedded log is
//! read without its lock, so replay works beside a running server. With
//! `--customer`, a first pass finds what concerns the customer (customers
//! merged into it, its interactions, its cases) and a second pass writes it.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::cli::{LogBackend, ReplayArgs};

/// The fields filters look at, read without parsing the whole event.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    t: &'a str,
    occurred_at: DateTime<Utc>,
    #[serde(borrow)]
    customer_id: Option<&'a str>,
    #[serde(borrow)]
    interaction_id: Option<&'a str>,
    #[serde(borrow)]
    case_id: Option<&'a str>,
    #[serde(default)]
    data: MergeData,
}

#[derive(Deserialize, Default)]
struct MergeData {
    merged_customer_id: Option<String>,
}

/// What concerns one customer.
#[derive(Default, Debug)]
pub struct Related {
    pub customers: BTreeSet<String>,
    pub interactions: BTreeSet<String>,
    pub cases: BTreeSet<String>,
}

impl Related {
    fn concerns(&self, h: &Head<'_>) -> bool {
        h.customer_id.is_some_and(|c| self.customers.contains(c))
            || (h.t.starts_with("interaction.")
                && h.interaction_id
                    .is_some_and(|i| self.interactions.contains(i)))
            || (h.t.starts_with("case.") && h.case_id.is_some_and(|c| self.cases.contains(c)))
    }
}

fn for_each_event(
    args: &ReplayArgs,
    mut f: impl FnMut(&crm_log::LogRecord) -> Result<()>,
) -> Result<u64> {
    if args.log.backend == LogBackend::Kafka {
        // Called on a blocking thread: drive the Kafka reader from here.
        return tokio::runtime::Handle::current().block_on(async {
            let log = crate::logs::open_kafka(&args.log).await?;
            let end = crm_log::Log::end(&*log).await?;
            let mut reader = crm_log::Log::reader(&*log, &crm_log::Checkpoint::default()).await?;
            let mut seen = crm_log::Checkpoint::default();
            let mut n = 0u64;
            // Up to the end as it was when replay started; partitions are
            // interleaved as they are read, each in its own order.
            while seen.lag_behind(&end) > 0 {
                let batch = reader
                    .next_batch(5000, std::time::Duration::from_secs(5))
                    .await?;
                if batch.is_empty() {
                    bail!(
                        "Kafka stopped answering before the end of the topic ({} events left)",
                        seen.lag_behind(&end)
                    );
                }
                for rec in &batch {
                    if rec.position.offset < end.next(rec.position.partition) {
                        f(rec)?;
                        n += 1;
                    }
                    seen.advance(rec.position);
                }
            }
            Ok(n)
        });
    }
    let dir = args.log.data_dir.join("log");
    let n = crm_log::embedded::scan_dir(&dir, |rec| {
        f(&rec).map_err(|e| crm_log::LogError::Unavailable(e.to_string()))?;
        Ok(true)
    })
    .with_context(|| format!("reading the log in {}", dir.display()))?;
    Ok(n)
}

/// First pass: the customer, customers merged into it (transitively), and
/// the interactions and cases attributed to any of them.
fn related(args: &ReplayArgs, customer: &str) -> Result<Related> {
    let mut merges: Vec<(String, String)> = Vec::new();
    let mut r = Related::default();
    r.customers.insert(customer.to_string());
    // Merges are few: collect them, then close over them.
    for_each_event(args, |rec| {
        let h: Head<'_> = serde_json::from_slice(&rec.payload)?;
        if h.t == "customer.merged" {
            if let (Some(s), Some(m)) = (h.customer_id, h.data.merged_customer_id) {
                merges.push((s.to_string(), m));
            }
        }
        Ok(())
    })?;
    loop {
        let before = r.customers.len();
        for (s, m) in &merges {
            if r.customers.contains(s) {
                r.customers.insert(m.clone());
            }
        }
        if r.customers.len() == before {
            break;
        }
    }
    for_each_event(args, |rec| {
        let h: Head<'_> = serde_json::from_slice(&rec.payload)?;
        if h.customer_id.is_some_and(|c| r.customers.contains(c)) {
            if h.t.starts_with("interaction.") {
                if let Some(i) = h.interaction_id {
                    r.interactions.insert(i.to_string());
                }
            } else if h.t.starts_with("case.") {
                if let Some(c) = h.case_id {
                    r.cases.insert(c.to_string());
                }
            }
        }
        Ok(())
    })?;
    Ok(r)
}

pub async fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let from = crate::time::parse_opt("from", args.from.as_deref())?;
    let until = crate::time::parse_opt("until", args.until.as_deref())?;
    if let (Some(f), Some(u)) = (from, until) {
        if u <= f {
            bail!("--until must be after --from");
        }
    }
    tokio::task::spawn_blocking(move || run(args, from, until)).await?
}

fn run(
    args: ReplayArgs,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<ExitCode> {
    let related = match &args.customer {
        Some(c) => Some(related(&args, c)?),
        None => None,
    };
    let out: Box<dyn Write> = match &args.out {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} events read, {msg}").expect("template"),
    );
    let mut written = 0u64;
    let total = for_each_event(&args, |rec| {
        bar.inc(1);
        let h: Head<'_> = serde_json::from_slice(&rec.payload)?;
        let keep = from.is_none_or(|f| h.occurred_at >= f)
            && until.is_none_or(|u| h.occurred_at < u)
            && args
                .type_prefix
                .as_deref()
                .is_none_or(|p| h.t.starts_with(p))
            && related.as_ref().is_none_or(|r| r.concerns(&h));
        if !keep {
            return Ok(());
        }
        if args.publishable {
            let text = std::str::from_utf8(&rec.payload)?;
            let mut e = crm_events::Event::from_stored_json(text)?;
            e.recorded_at = None;
            out.write_all(e.to_json().as_bytes())?;
        } else {
            // The stored JSON with the position added first.
            out.write_all(format!("{{\"position\":\"{}\",", rec.position).as_bytes())?;
            out.write_all(&rec.payload[1..])?;
        }
        out.write_all(b"\n")?;
        written += 1;
        if written.is_multiple_of(10_000) {
            bar.set_message(format!("{written} written"));
        }
        Ok(())
    })?;
    out.flush()?;
    bar.finish_and_clear();
    eprintln!("replayed {written} of {total} events");
    Ok(ExitCode::SUCCESS)
}
