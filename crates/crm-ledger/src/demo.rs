//! `crm-ledger demo`: a realistic, reproducible contact-center history as
//! NDJSON (calls, emails, chats, SMS, social, cases, campaigns, merges,
//! consents), streamed with constant memory whatever its size.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use crm_demo::DemoConfig;

pub fn demo(args: crate::cli::DemoArgs) -> Result<ExitCode> {
    if args.customers == 0 || args.days == 0 {
        bail!("--customers and --days must be at least 1");
    }
    let out: Box<dyn Write> = match &args.out {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let config = DemoConfig::new(args.customers, args.days, args.seed);
    let written = crm_demo::try_generate(&config, |event| {
        serde_json::to_writer(&mut out, &event).map_err(std::io::Error::from)?;
        out.write_all(b"\n")
    });
    let summary = match written {
        Ok(s) => s,
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("writing the history"),
    };
    out.flush().context("writing the history")?;
    eprintln!(
        "{} events: {} customers, {} interactions, {} cases, {} campaigns, from {} to {} (seed {})",
        summary.events,
        summary.customers,
        summary.interactions,
        summary.cases,
        summary.campaigns,
        summary
            .first_occurred_at
            .map(|t| crm_events::format_time(&t))
            .unwrap_or_default(),
        summary
            .last_occurred_at
            .map(|t| crm_events::format_time(&t))
            .unwrap_or_default(),
        args.seed
    );
    Ok(ExitCode::SUCCESS)
}
