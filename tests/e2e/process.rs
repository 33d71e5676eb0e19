//! What `serve` sets for its own process.

use crate::support::Server;

/// The `THP_enabled` line of a process's status (Linux 5.0 and later), or
/// `None` where the kernel does not report it.
#[cfg(target_os = "linux")]
fn thp_enabled(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

/// The server turns transparent huge pages off for itself (the first
/// publishes of a fresh server waited for the kernel to zero 2 MiB pages,
/// docs/performance.md), and leaves them to the operator who sets
/// `MIMALLOC_ALLOW_THP`.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_turns_transparent_huge_pages_off_for_itself_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &["--role", "ingest"], &[]).await;
    let Some(default) = thp_enabled(server.child.id()) else {
        eprintln!("SKIPPED: this kernel does not report THP_enabled in /proc/PID/status");
        return;
    };
    assert_eq!(default, "0", "serve leaves transparent huge pages on");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &["--role", "ingest"],
        &[("MIMALLOC_ALLOW_THP", "1")],
    )
    .await;
    assert_eq!(
        thp_enabled(server.child.id()).as_deref(),
        Some("1"),
        "MIMALLOC_ALLOW_THP=1 should leave the kernel's setting alone"
    );
}

/// The scheduling policy (field 41 of `/proc/PID/task/TID/stat`) and nice
/// value (field 19) of each of `pid`'s threads named `fold-N`.
#[cfg(target_os = "linux")]
fn fold_threads(pid: u32) -> Vec<(i64, i64)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if !comm.starts_with("fold-") {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // The fields after the name, which is in parentheses: state is
        // field 3, so field N is at index N - 3.
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        found.push((rest[41 - 3].parse().unwrap(), rest[19 - 3].parse().unwrap()));
    }
    found
}

/// Publishes one event, waits until the read models have applied it, and
/// returns what `fold_threads` finds then.
#[cfg(target_os = "linux")]
async fn fold_threads_after_one_event(extra: &[&str]) -> Vec<(i64, i64)> {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::support::Server::start(dir.path(), extra).await;
    let client = reqwest::Client::new();
    let answer = crate::support::post_json(
        &client,
        server.url("/v1/events"),
        &[crate::support::note("prio-1", "K-1")],
    )
    .await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    crate::support::wait_live(&server, "cases").await;
    fold_threads(server.child.id())
}

/// The read models fold in the idle scheduling class unless told otherwise
/// (`--projection-nice`), so that queries and publishes take the CPU from
/// them at once (docs/operations.md).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_folds_in_the_idle_class_by_default_or_at_the_nice_value_given() {
    const SCHED_OTHER: i64 = 0;
    const SCHED_IDLE: i64 = 5;
    let default = fold_threads_after_one_event(&[]).await;
    assert!(!default.is_empty(), "no fold threads");
    for (policy, _) in &default {
        assert_eq!(*policy, SCHED_IDLE, "default: {default:?}");
    }
    let niced = fold_threads_after_one_event(&["--projection-nice", "12"]).await;
    assert!(!niced.is_empty(), "no fold threads");
    for (policy, nice) in &niced {
        assert_eq!(*policy, SCHED_OTHER, "--projection-nice 12: {niced:?}");
        // At least 12: a process started at a higher nice value keeps it.
        assert!(*nice >= 12, "--projection-nice 12: {niced:?}");
    }
}
