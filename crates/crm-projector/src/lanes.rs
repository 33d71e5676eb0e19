//! How the live projections share the cores with ingest.
//!
//! A process that both answers publishes and runs the projections (`serve
//! --role all`) has two kinds of CPU-bound work: validating and appending
//! the events it is sent, and folding them into the read models. Left alone,
//! each projection applies its batches on a thread of its own, so three
//! projections take as many threads as the publishes do, and the publishers,
//! who wait for their answer, get a smaller share of the cores. On two
//! cores, applying the projections side by side buys little meanwhile.
//!
//! [`Lanes`] lets at most `busy_lanes` projections apply a batch at once
//! while publishes are being answered ([`IngestActivity`] says so), and any
//! number of them otherwise, so that they catch up side by side as soon as
//! ingest is quiet. A projection waiting for a lane has read its batch but
//! not applied it: nothing is lost, it only lags more during a burst.
//! Commits run at the normal priority (lowering the projections' priority
//! instead was measured, in session 7, to slow queries down: a preempted
//! commit held sled's lock, as commits did then; see docs/performance.md).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Ingest counts as busy for this long after its last publish ended: the
/// gap between the requests of a client that publishes without pause.
const QUIET_AFTER: Duration = Duration::from_millis(50);

/// Whether publishes are being answered, told by the publish path.
#[derive(Debug)]
pub struct IngestActivity {
    in_progress: AtomicUsize,
    /// Milliseconds since `epoch` at which the last publish ended.
    last_end_ms: AtomicU64,
    epoch: Instant,
    quiet_after: Duration,
}

impl Default for IngestActivity {
    fn default() -> Self {
        IngestActivity {
            in_progress: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            quiet_after: QUIET_AFTER,
        }
    }
}

/// A publish in progress: ends when dropped.
#[must_use = "the publish counts as in progress until this is dropped"]
pub struct Publishing(Arc<IngestActivity>);

impl Drop for Publishing {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_end_ms.store(a.now_ms(), Ordering::Relaxed);
        a.in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

impl IngestActivity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Ingest counts as busy for `quiet_after` after its last publish
    /// (50 ms by default).
    pub fn with_quiet_after(quiet_after: Duration) -> Arc<Self> {
        Arc::new(IngestActivity {
            quiet_after,
            ..Self::default()
        })
    }

    fn now_ms(&self) -> u64 {
        // 1 more than the elapsed time, so that 0 means "never".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Marks a publish as in progress until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Publishing {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        Publishing(self.clone())
    }

    /// True while a publish is in progress, and for a moment after the last
    /// one ended.
    pub fn busy(&self) -> bool {
        if self.in_progress.load(Ordering::Relaxed) > 0 {
            return true;
        }
        let last = self.last_end_ms.load(Ordering::Relaxed);
        last != 0 && self.now_ms().saturating_sub(last) < self.quiet_after.as_millis() as u64
    }
}

/// At most `busy_lanes` projections applying at once while ingest is busy.
#[derive(Clone)]
pub struct Lanes {
    activity: Arc<IngestActivity>,
    permits: Arc<Semaphore>,
    busy_lanes: usize,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("busy_lanes", &self.busy_lanes)
            .field("ingest_busy", &self.activity.busy())
            .finish()
    }
}

impl Lanes {
    /// `busy_lanes` must be at least 1.
    pub fn new(activity: Arc<IngestActivity>, busy_lanes: usize) -> Lanes {
        assert!(busy_lanes >= 1, "at least one lane");
        Lanes {
            activity,
            permits: Arc::new(Semaphore::new(busy_lanes)),
            busy_lanes,
        }
    }

    /// Waits for a lane if ingest is busy; the lane is held until the
    /// returned permit is dropped. `None`: ingest is quiet, go ahead.
    pub async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        if !self.activity.busy() {
            return None;
        }
        Some(
            self.permits
                .clone()
                .acquire_owned()
                .await
                .expect("the lanes' semaphore is never closed"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn quiet_ingest_lets_every_projection_apply_at_once() {
        let activity = IngestActivity::new();
        let lanes = Lanes::new(activity.clone(), 1);
        assert!(!activity.busy(), "no publish yet");
        let a = lanes.enter().await;
        let b = tokio::time::timeout(SHORT, lanes.enter()).await;
        assert!(a.is_none());
        assert!(matches!(b, Ok(None)), "the second one did not wait");
    }

    #[tokio::test]
    async fn busy_ingest_leaves_one_lane_and_frees_it_after_the_quiet_moment() {
        let activity = IngestActivity::new();
        let lanes = Lanes::new(activity.clone(), 1);
        let publishing = activity.begin();
        assert!(activity.busy());
        let first = lanes.enter().await;
        assert!(first.is_some(), "a lane was taken");
        // A second projection waits for the lane while the first holds it.
        let waiting = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.enter().await.is_some() }
        });
        tokio::time::sleep(SHORT).await;
        assert!(!waiting.is_finished(), "the second projection did not wait");
        drop(first);
        assert!(waiting.await.unwrap(), "it took the lane once it was free");

        drop(publishing);
        tokio::time::sleep(QUIET_AFTER + Duration::from_millis(20)).await;
        assert!(!activity.busy(), "quiet after the moment");
        let a = lanes.enter().await;
        let b = lanes.enter().await;
        assert!(a.is_none() && b.is_none());
    }

    #[tokio::test]
    async fn ingest_stays_busy_for_the_quiet_moment_after_a_publish() {
        let activity = IngestActivity::with_quiet_after(Duration::from_secs(600));
        assert!(!activity.busy());
        drop(activity.begin());
        assert!(activity.busy(), "within the moment after the last publish");
    }

    #[tokio::test]
    async fn two_lanes_let_two_apply_while_busy() {
        let activity = IngestActivity::new();
        let lanes = Lanes::new(activity.clone(), 2);
        let _p = activity.begin();
        let a = lanes.enter().await;
        let b = tokio::time::timeout(SHORT, lanes.enter()).await;
        assert!(a.is_some());
        assert!(matches!(b, Ok(Some(_))), "a second lane was free");
        let c = tokio::time::timeout(SHORT, lanes.enter()).await;
        assert!(c.is_err(), "a third waited");
    }
}
