//! `set_fold_priority` with a nice value, through the runtime: every event
//! is applied on a `fold-N` thread at that nice value. (The idle class is
//! covered by the unit test in `runner.rs`; the fold threads are made once
//! per process, hence a test binary of its own.)
#![cfg(target_os = "linux")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::note;
use crm_events::Event;
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::{AppendOutcome, Log, Token};
use crm_projection::{ApplyError, Projection, Tx};
use crm_projector::{set_fold_priority, wait_for, FoldPriority, Projector, RunnerConfig, Store};

/// Notes the name, nice value and scheduling policy of each thread that
/// applies an event.
#[derive(Default, Clone)]
struct Probe {
    seen: Arc<Mutex<Vec<(String, i32, i32)>>>,
}

impl Projection for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn format_version(&self) -> u32 {
        1
    }
    fn apply(&self, tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
        // SAFETY: plain integers in and out; the thread id and 0 name the
        // calling thread only.
        let (nice, policy) = unsafe {
            (
                libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t),
                libc::sched_getscheduler(0),
            )
        };
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.seen.lock().unwrap().push((name, nice, policy));
        tx.put(format!("e/{}", e.event_id), "1");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_nice_value_every_event_is_applied_on_a_fold_thread_at_that_value() {
    set_fold_priority("10".parse::<FoldPriority>().unwrap());
    let d = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(d.path().join("log"))).unwrap());
    let mut token = Token::default();
    for o in log
        .append(
            (0..20)
                .map(|i| note(&format!("e{i}"), "k1", "ok"))
                .collect(),
        )
        .await
        .unwrap()
    {
        if let AppendOutcome::Appended(p) = o {
            token.include(p);
        }
    }
    let store = Store::open(&d.path().join("store"), 8 << 20).unwrap();
    let probe = Probe::default();
    let config = RunnerConfig {
        batch_max: 5,
        ..RunnerConfig::default()
    };
    let projector =
        Projector::start(&store, log.clone(), vec![Arc::new(probe.clone())], config).unwrap();
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(30)).await);
    projector.stop().await;
    let seen = probe.seen.lock().unwrap();
    assert_eq!(seen.len(), 20, "every event applied once");
    for (name, nice, policy) in seen.iter() {
        assert!(name.starts_with("fold-"), "applied on {name:?}");
        // At least 10: a process started at a higher nice value keeps it.
        assert!(*nice >= 10, "nice {nice} on {name}");
        assert_eq!(*policy, libc::SCHED_OTHER, "policy on {name}");
    }
}
