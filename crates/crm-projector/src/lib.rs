//! # crm-projector
//!
//! The projector runtime. For each [`crm_projection::Projection`] it reads the
//! log from the projection's checkpoint, applies events in batches on top of
//! the projection's sled tree, and commits the state changes *and* the new
//! checkpoint in one atomic sled batch: after a crash the projection resumes
//! exactly after the last event it committed, never applying one twice or
//! skipping one.
//!
//! A tree that is missing, damaged, or of another format version is cleared
//! and rebuilt from the log by itself ([`runner::prepare_tree`]). An event a
//! projection cannot apply (an error, or even a panic) becomes a dead letter
//! and the projection goes on.

use std::sync::Arc;
use std::time::Duration;

use crm_log::{Log, Token};
use crm_projection::Projection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod runner;
pub mod store;

pub use runner::{EventFilter, Handle, Runner, RunnerConfig, State, Status};
pub use store::{digest, Error, Store, TreeKv};

/// The running projections of a process.
pub struct Projector {
    pub handles: Vec<Arc<Handle>>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl Projector {
    /// Prepares every projection's tree and starts its runner.
    pub fn start(
        store: &Store,
        log: Arc<dyn Log>,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Result<Projector, Error> {
        let (shutdown, rx) = watch::channel(false);
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        for p in projections {
            let name = p.name();
            let (runner, handle) = Runner::new(store, name, p, log.clone(), config.clone())?;
            handles.push(handle);
            tasks.push(tokio::spawn(runner.run(rx.clone())));
        }
        Ok(Projector {
            handles,
            tasks,
            shutdown,
        })
    }

    /// The handle of a projection by name.
    pub fn handle(&self, name: &str) -> Option<&Arc<Handle>> {
        self.handles.iter().find(|h| h.name() == name)
    }

    /// Stops every runner after its current batch and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Waits until every handle in `handles` has applied `token`, up to
/// `timeout`. Returns whether they all did.
pub async fn wait_for(handles: &[Arc<Handle>], token: &Token, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    for h in handles {
        let mut rx = h.applied();
        loop {
            if rx.borrow_and_update().covers(token) {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return rx.borrow().covers(token),
            }
        }
    }
    true
}
