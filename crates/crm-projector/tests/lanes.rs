//! The projections' lanes over a real embedded log and sled: while
//! publishes are in progress, one projection applies at a time; otherwise
//! they apply side by side, and either way every event is applied.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::note;
use crm_events::Event;
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::{AppendOutcome, Log, Token};
use crm_projection::{get_json, ApplyError, Projection, Tx};
use crm_projector::{wait_for, IngestActivity, Lanes, Projector, RunnerConfig, Store};

/// How many projections are inside `apply` at once, and the most seen.
#[derive(Default)]
struct Overlap {
    active: AtomicUsize,
    most: AtomicUsize,
}

/// Counts events, taking 2 ms for each, and notes the overlap.
struct Slow {
    name: &'static str,
    overlap: Arc<Overlap>,
}

impl Projection for Slow {
    fn name(&self) -> &'static str {
        self.name
    }
    fn format_version(&self) -> u32 {
        1
    }
    fn apply(&self, tx: &mut Tx<'_>, _: &Event) -> Result<(), ApplyError> {
        let now = self.overlap.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.overlap.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2));
        self.overlap.active.fetch_sub(1, Ordering::SeqCst);
        let n: u64 = tx.get_json(b"n")?.unwrap_or(0);
        tx.put_json("n", &(n + 1));
        Ok(())
    }
}

const EVENTS: usize = 60;

/// Publishes `EVENTS` events, then runs three slow projections over them
/// with `lanes`; returns the most projections seen applying at once.
async fn most_at_once(lanes: Option<Lanes>) -> usize {
    let d = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(d.path().join("log"))).unwrap());
    let mut token = Token::default();
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(10) {
        let batch = chunk
            .iter()
            .map(|&i| note(&format!("e{i}"), "k1", "ok"))
            .collect();
        for o in log.append(batch).await.unwrap() {
            if let AppendOutcome::Appended(p) = o {
                token.include(p);
            }
        }
    }
    let store = Store::open(&d.path().join("store"), 8 << 20).unwrap();
    let overlap = Arc::new(Overlap::default());
    let projections: Vec<Arc<dyn Projection>> = ["p0", "p1", "p2"]
        .into_iter()
        .map(|name| {
            Arc::new(Slow {
                name,
                overlap: overlap.clone(),
            }) as Arc<dyn Projection>
        })
        .collect();
    let config = RunnerConfig {
        batch_max: 10,
        lanes,
        ..RunnerConfig::default()
    };
    let projector = Projector::start(&store, log.clone(), projections, config).unwrap();
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(30)).await);
    for h in &projector.handles {
        let n: u64 = get_json(&h.kv(), b"n").unwrap().unwrap();
        assert_eq!(n, EVENTS as u64, "{} applied every event", h.name());
    }
    projector.stop().await;
    overlap.most.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_publishing_one_projection_applies_at_a_time() {
    let activity = IngestActivity::new();
    let publishing = activity.begin();
    let most = most_at_once(Some(Lanes::new(activity.clone(), 1))).await;
    drop(publishing);
    assert_eq!(most, 1, "the projections applied side by side while busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_ingest_is_quiet_the_projections_apply_side_by_side() {
    // The same run with lanes but no publish, and without lanes: the
    // projections overlap, so the test above sees the lanes' effect.
    let quiet = IngestActivity::new();
    let most = most_at_once(Some(Lanes::new(quiet, 1))).await;
    assert!(most >= 2, "quiet ingest: at most {most} at once");
    let most = most_at_once(None).await;
    assert!(most >= 2, "no lanes: at most {most} at once");
}
