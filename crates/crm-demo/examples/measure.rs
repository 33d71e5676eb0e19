//! Measures a demo history: `cargo run --release -p crm-demo --example measure -- [customers] [days] [seed]`.

use std::time::Instant;

use crm_demo::{generate, DemoConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let cfg = DemoConfig::new(arg(0, 1000) as usize, arg(1, 30) as u32, arg(2, 42));
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut max = 0usize;
    let sample = std::env::var("SAMPLE").ok();
    let summary = generate(&cfg, |v| {
        let line = serde_json::to_string(&v).expect("serialises");
        if let Some(ty) = &sample {
            if ty == "all" || v["type"] == ty.as_str() {
                println!("{line}");
            }
        }
        bytes += line.len() as u64 + 1;
        max = max.max(line.len());
    });
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{cfg:?}");
    eprintln!(
        "events {} ({:.1}/customer), mean {:.0} B, max {} B, total {:.1} MB, {:.2} s, {:.0} events/s",
        summary.events,
        summary.events as f64 / cfg.customers as f64,
        bytes as f64 / summary.events as f64,
        max,
        bytes as f64 / 1e6,
        secs,
        summary.events as f64 / secs
    );
    eprintln!(
        "customer {} consent {} interaction {} case {} campaign {}; interactions {} cases {} campaigns {}; registered {}; late {}; violations {}",
        summary.customer_events,
        summary.consent_events,
        summary.interaction_events,
        summary.case_events,
        summary.campaign_events,
        summary.interactions,
        summary.cases,
        summary.campaigns,
        summary.registered,
        summary.late_events,
        summary.consent_violations
    );
    for (t, n) in &summary.by_type {
        eprintln!(
            "  {t:28} {n:>9} {:>6.2}%",
            *n as f64 * 100.0 / summary.events as f64
        );
    }
}
