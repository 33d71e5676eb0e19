//! Access control over a real socket: without keys `serve` refuses a
//! non-loopback address and says that authentication is off; with keys (file
//! and environment) it listens anywhere and checks every request.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{free_port, note, BIN};

#[test]
fn without_keys_serve_refuses_a_non_loopback_address_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("0.0.0.0:{port}")])
        .env_remove("CRM_LEDGER_API_KEYS")
        .env_remove("CRM_LEDGER_API_KEYS_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:") && err.contains("no API keys"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );
    assert!(
        !dir.path().join("log").exists(),
        "refused before touching the data dir"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_on_loopback_it_starts_and_warns_that_auth_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--projections", "", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("CRM_LEDGER_API_KEYS")
        .env_remove("CRM_LEDGER_API_KEYS_FILE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_healthy(port).await;
    let r = reqwest::get(format!("http://127.0.0.1:{port}/v1/dead-letters"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "no keys: open on loopback");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("authentication is off"), "{err}");
}

async fn wait_healthy(port: u16) {
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn keys_line(role: &str) -> (String, String) {
    let out = Command::new(BIN)
        .args(["keys", "new", "--role", role, "--name", role])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let key = lines.next().unwrap().to_string();
    let line = lines.next().unwrap().to_string();
    assert!(key.starts_with("crm_") && key.len() == 68, "{key}");
    assert!(
        line.starts_with(&format!("{role} ")) && line.ends_with(role),
        "{line}"
    );
    (key, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_from_file_and_environment_it_listens_anywhere_and_checks_roles() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, pline) = keys_line("publisher");
    let (reader, rline) = keys_line("reader");
    // `keys hash` gives the same hash as `keys new`'s line.
    let mut hash = Command::new(BIN)
        .args(["keys", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(hash.stdin.take().unwrap(), "{reader}").unwrap();
    let out = hash.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        rline.split_whitespace().nth(1).unwrap()
    );
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("# test keys\n{pline}\n{rline}\n")).unwrap();
    let admin = "admin-from-the-environment-0001";
    let port = free_port();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args(["serve", "--projections", "cases", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("0.0.0.0:{port}"), "--api-keys"])
        .arg(&keys)
        .env("CRM_LEDGER_API_KEYS", format!("admin:{admin}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_healthy(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let post = |key: Option<&str>| {
        let mut r = client
            .post(format!("{base}/v1/events"))
            .json(&note(&format!("n-{}", key.unwrap_or("none").len()), "c1"));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some(&reader)).await.unwrap().status(), 403);
    let r = post(Some(&publisher)).await.unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["consistency_token"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |path: String, key: Option<&str>| {
        let mut r = client.get(format!("{base}{path}"));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let r = get(
        format!("/v1/cases/c1?consistent_with={token}"),
        Some(&reader),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        404,
        "a note without case.opened: no case, but access"
    );
    let r = get("/v1/cases/c1".into(), Some(&publisher)).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = get("/v1/cases/c1".into(), Some("crm_wrong")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert!(
        r.headers().contains_key("x-request-id"),
        "refusals carry a request id"
    );
    assert_eq!(
        get("/v1/dead-letters".into(), Some(&reader))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        get("/v1/dead-letters".into(), Some(admin))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get("/readyz".into(), None).await.unwrap().status(), 200);
    assert_eq!(get("/metrics".into(), None).await.unwrap().status(), 401);
    let m = get("/metrics".into(), Some(&reader)).await.unwrap();
    assert_eq!(m.status(), 200);
    assert!(m
        .text()
        .await
        .unwrap()
        .contains("crm_http_auth_failures_total"));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_bad_keys_file_stops_the_start_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "reader 0123\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--api-keys",
        ])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1") && err.contains("BLAKE3"), "{err}");
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("CRM_LEDGER_API_KEYS", "admin:short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shorter than 16"), "{err}");
}
