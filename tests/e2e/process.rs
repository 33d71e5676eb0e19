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
