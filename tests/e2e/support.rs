//! Starting, stopping and killing a real server.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_crm-ledger");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Passes the server's log on to the test's stderr and returns the port
/// its ready line says it listens on.
async fn ready_port(child: &mut Child) -> u16 {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if line.contains("crm-ledger ready") {
                let port = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| {
                        p.trim_end_matches(|c: char| !c.is_ascii_digit())
                            .parse::<u16>()
                            .ok()
                    });
                if let (Some(tx), Some(port)) = (tx.take(), port) {
                    let _ = tx.send(port);
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(port)) => port,
        Ok(Err(_)) => panic!("the server exited before it was ready: {:?}", child.wait()),
        Err(_) => panic!("the server printed no ready line within 60 s"),
    }
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub ready_in: Duration,
}

impl Server {
    /// Starts `crm-ledger serve` on a free port and waits until /healthz answers.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(data_dir, extra, &[]).await
    }

    /// [`Server::start`] with extra environment variables.
    ///
    /// The server binds port 0 and the port is read from its ready line:
    /// a port picked beforehand ([`free_port`]) can be taken by another
    /// test's server before this one binds it, and this test would then
    /// talk to that server (and find its events missing from its own log).
    pub async fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let started = Instant::now();
        // CRM_E2E_SERVER_LOG: more of the server's log, when a test needs
        // explaining. The ready line (info) is always asked for.
        let log = std::env::var("CRM_E2E_SERVER_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra)
            .env("RUST_LOG", format!("{log},crm_ledger::serve=info"))
            // The server's own memory setting, not the caller's.
            .env_remove("MIMALLOC_ALLOW_THP")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crm-ledger");
        let port = ready_port(&mut child).await;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Server {
            child,
            base,
            ready_in: started.elapsed(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event id in the embedded log of `data_dir`, with how often it occurs.
pub fn log_ids(data_dir: &Path) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    crm_log::embedded::scan_dir(&data_dir.join("log"), |r| {
        *ids.entry(r.event_id).or_insert(0) += 1;
        Ok(true)
    })
    .unwrap();
    ids
}

/// A valid event of the case stream.
pub fn note(id: &str, case: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": id, "type": "case.note_added", "occurred_at": "2026-11-20T10:00:00Z",
        "source": "e2e", "case_id": case, "data": {"text": format!("note {id}")}
    })
}

/// Waits until projection `name` is live and has applied the whole log.
pub async fn wait_live(server: &Server, name: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ps: serde_json::Value = client
            .get(server.url("/v1/projections"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let p = ps
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone();
        if p["status"] == "live" && p["lag"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{name} did not catch up: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs `body` as JSON and returns the JSON answer (whatever its status).
pub async fn post_json<T: serde::Serialize + ?Sized>(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    body: &T,
) -> serde_json::Value {
    client
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// GETs `url` and returns the JSON answer (whatever its status).
pub async fn get_json(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}
