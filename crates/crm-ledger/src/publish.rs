//! `crm-ledger publish FILE`: sends NDJSON to a running ledger in batches.
//!
//! Events are spread over `--concurrency` lanes by stream (the same stream
//! always goes to the same lane), and each lane sends its batches one after
//! the other, so the order of every stream is kept while lanes run in
//! parallel. A batch answered 503/507, or lost to a connection error, is sent
//! again (publishing is idempotent by `event_id`) with a bounded back-off.
//! Exits 0 when everything was accepted or duplicate, 1 when anything was
//! rejected, 2 on a fatal error.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::cli::PublishArgs;

/// A batch: line numbers and the NDJSON body.
struct Batch {
    lines: Vec<usize>,
    body: String,
}

#[derive(Default, Debug)]
pub struct Totals {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub errors: Vec<String>,
}

#[derive(Deserialize)]
struct StreamOf<'a> {
    #[serde(rename = "type", borrow)]
    t: Option<&'a str>,
    customer_id: Option<&'a str>,
    interaction_id: Option<&'a str>,
    case_id: Option<&'a str>,
    campaign_id: Option<&'a str>,
}

/// The lane of a line: by its stream, so a stream's events stay in order.
pub(crate) fn lane_of(line: &str, lanes: usize) -> usize {
    let Ok(s) = serde_json::from_str::<StreamOf<'_>>(line) else {
        return 0;
    };
    let family = s.t.and_then(|t| t.split('.').next()).unwrap_or("");
    let id = match family {
        "customer" | "consent" => s.customer_id,
        "interaction" => s.interaction_id,
        "case" => s.case_id,
        "campaign" => s.campaign_id,
        _ => None,
    };
    let mut h = DefaultHasher::new();
    (
        if family == "consent" {
            "customer"
        } else {
            family
        },
        id,
    )
        .hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

#[derive(Deserialize)]
struct Answer {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    results: Vec<AnswerResult>,
}

#[derive(Deserialize)]
struct AnswerResult {
    event_id: Option<String>,
    status: String,
    error: Option<serde_json::Value>,
}

async fn send(client: &reqwest::Client, url: &str, batch: &Batch) -> Result<Answer> {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=20 {
        let resp = client
            .post(url)
            .header("content-type", "application/x-ndjson")
            .body(batch.body.clone())
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {
                return r.json::<Answer>().await.context("reading the answer")
            }
            Ok(r) if r.status().as_u16() == 503 || r.status().as_u16() == 507 => {
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(delay);
                tracing::warn!(status = %r.status(), attempt, "ledger unavailable; retrying");
                tokio::time::sleep(retry.min(Duration::from_secs(30))).await;
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                bail!(
                    "the ledger answered {status} for lines {}..: {text}",
                    batch.lines[0]
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot reach the ledger; retrying");
                tokio::time::sleep(delay).await;
            }
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    Err(anyhow!(
        "the ledger did not take lines {}.. after 20 attempts",
        batch.lines[0]
    ))
}

pub async fn publish(args: PublishArgs) -> Result<ExitCode> {
    if args.batch == 0 || args.concurrency == 0 {
        bail!("--batch and --concurrency must be at least 1");
    }
    let (reader, size): (Box<dyn Read + Send>, Option<u64>) = if args.file == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f =
            std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let url = format!("{}/v1/events", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;

    let bar = match size {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta} {msg}",
            )
            .expect("template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read {msg}").expect("template"),
        ),
    };

    // Lanes: one sender task each, batches in order.
    let lanes = args.concurrency;
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..lanes {
        let (tx, mut rx) = mpsc::channel::<Batch>(2);
        senders.push(tx);
        let client = client.clone();
        let url = url.clone();
        let bar = bar.clone();
        let verbose = args.verbose;
        tasks.push(tokio::spawn(async move {
            let mut t = Totals::default();
            while let Some(batch) = rx.recv().await {
                let bytes = batch.body.len() as u64;
                let answer = send(&client, &url, &batch).await?;
                t.accepted += answer.accepted;
                t.duplicates += answer.duplicates;
                t.rejected += answer.rejected;
                for (line, r) in batch.lines.iter().zip(&answer.results) {
                    if r.status == "rejected" && (verbose || t.errors.len() < 20) {
                        t.errors.push(format!(
                            "line {line} ({}): {}",
                            r.event_id.as_deref().unwrap_or("no event_id"),
                            r.error.as_ref().map(|e| e.to_string()).unwrap_or_default()
                        ));
                    }
                }
                bar.inc(bytes);
                bar.set_message(format!("{} accepted, {} rejected", t.accepted, t.rejected));
            }
            Ok::<Totals, anyhow::Error>(t)
        }));
    }

    // Read lines on a blocking thread and hand batches to the lanes.
    let batch_size = args.batch;
    let reading = tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut pending: Vec<Batch> = (0..lanes)
            .map(|_| Batch {
                lines: Vec::new(),
                body: String::new(),
            })
            .collect();
        let mut n = 0u64;
        for (i, line) in BufReader::with_capacity(1 << 20, reader)
            .lines()
            .enumerate()
        {
            let line = line.context("reading the input")?;
            if line.trim().is_empty() {
                continue;
            }
            n += 1;
            let lane = lane_of(&line, lanes);
            let b = &mut pending[lane];
            b.lines.push(i + 1);
            b.body.push_str(&line);
            b.body.push('\n');
            if b.lines.len() >= batch_size {
                let full = std::mem::replace(
                    b,
                    Batch {
                        lines: Vec::new(),
                        body: String::new(),
                    },
                );
                senders[lane]
                    .blocking_send(full)
                    .map_err(|_| anyhow!("a sender stopped"))?;
            }
        }
        for (lane, b) in pending.into_iter().enumerate() {
            if !b.lines.is_empty() {
                senders[lane]
                    .blocking_send(b)
                    .map_err(|_| anyhow!("a sender stopped"))?;
            }
        }
        Ok(n)
    });
    let read = reading.await?;
    let mut totals = Totals::default();
    let mut failure = None;
    for t in tasks {
        match t.await? {
            Ok(t) => {
                totals.accepted += t.accepted;
                totals.duplicates += t.duplicates;
                totals.rejected += t.rejected;
                totals.errors.extend(t.errors);
            }
            Err(e) => failure = Some(e),
        }
    }
    bar.finish_and_clear();
    let lines = read?;
    for e in &totals.errors {
        eprintln!("rejected: {e}");
    }
    println!(
        "{lines} events read: {} accepted, {} duplicates, {} rejected",
        totals.accepted, totals.duplicates, totals.rejected
    );
    if let Some(e) = failure {
        return Err(e.context("publishing stopped"));
    }
    Ok(if totals.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_always_goes_to_the_same_lane() {
        let a = r#"{"type":"case.opened","case_id":"k1","customer_id":"c9"}"#;
        let b = r#"{"type":"case.closed","case_id":"k1","customer_id":"c1"}"#;
        assert_eq!(lane_of(a, 7), lane_of(b, 7));
        let c = r#"{"type":"customer.registered","customer_id":"c1"}"#;
        let d = r#"{"type":"consent.granted","customer_id":"c1"}"#;
        assert_eq!(
            lane_of(c, 7),
            lane_of(d, 7),
            "consent.* is the customer's stream"
        );
        assert_eq!(lane_of("not json", 7), 0);
    }
}
