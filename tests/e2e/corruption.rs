//! Damaged files. A flipped byte in a log segment stops `serve` with the
//! file and byte offset of the damaged record; damaged bytes in the sled
//! store of the read models are detected and the read models rebuilt from
//! the log, answering the same as before.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{free_port, Server, BIN};
use crate::verify::{
    assert_read_models_equal_a_rebuild, mixed_batch, wait_caught_up, wait_store_checked,
};

/// Publishes `batches` mixed batches of `n` events; returns the last token.
async fn publish(server: &Server, tag: &str, batches: usize, n: usize) -> String {
    let client = reqwest::Client::new();
    let mut token = String::new();
    let campaigns: Vec<Value> = (0..3)
        .map(|w| {
            serde_json::json!({"event_id": format!("{tag}-camp-{w}"), "type": "campaign.created",
                "occurred_at": "2026-11-01T00:00:00Z", "source": "e2e", "campaign_id": format!("camp-{w}"),
                "data": {"name": "Winter", "channel": "phone", "purpose": "service"}})
        })
        .collect();
    let r = client
        .post(server.url("/v1/events"))
        .json(&campaigns)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for b in 0..batches {
        let r: Value = client
            .post(server.url("/v1/events"))
            .json(&mixed_batch(&format!("{tag}-{b}"), b % 3, n))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["accepted"], n, "{r}");
        token = r["consistency_token"].as_str().unwrap().to_string();
    }
    token
}

fn copy_dir(from: &Path, to: &Path) {
    assert!(Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success());
}

fn segment(data: &Path) -> PathBuf {
    data.join("log/segments/00000000000000000000.seg")
}

/// Byte offsets of the records of a segment (16-byte header, then
/// `[u32 length][u32 CRC][body]`).
fn record_starts(seg: &Path) -> Vec<(u64, u32)> {
    let bytes = std::fs::read(seg).unwrap();
    let mut pos = 16usize;
    let mut out = Vec::new();
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
        out.push((pos as u64, len));
        pos += 8 + len as usize;
    }
    assert_eq!(pos, bytes.len(), "whole records");
    out
}

fn flip(file: &Path, at: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at as usize] ^= 0x20;
    std::fs::write(file, bytes).unwrap();
}

/// Runs `serve` on `data` and expects it to refuse to start.
fn serve_fails(data: &Path) -> String {
    let out = Command::new("timeout")
        .arg("60")
        .arg(BIN)
        .args(["serve", "--projections", "", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "serve started on a damaged log: {err}"
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_log_segment_stops_serve_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let mut server = Server::start(&good, &["--projections", ""]).await;
    publish(&server, "log", 5, 20).await;
    assert!(server.terminate().success());
    let records = record_starts(&segment(&good));
    let n = records.len();
    assert_eq!(n, 103, "3 campaigns and 100 events");

    // A record in the middle, the first record, and the very last one (which
    // a crash mid-write could also have left damaged: the id index tells
    // that it had been acknowledged, so it is damage, not a torn tail).
    for (case, idx) in [("middle", n / 2), ("first", 0), ("last", n - 1)] {
        let data = dir.path().join(case);
        copy_dir(&good, &data);
        let (start, len) = records[idx];
        flip(&segment(&data), start + 8 + u64::from(len) / 2);
        let before = std::fs::metadata(segment(&data)).unwrap().len();
        let err = serve_fails(&data);
        let seg = segment(&data);
        assert!(
            err.contains(&seg.display().to_string()) && err.contains(&format!("at byte {start}")),
            "{case}: the error names the segment and the record's offset {start}: {err}"
        );
        assert!(err.contains("CRC"), "{case}: {err}");
        assert_eq!(
            std::fs::metadata(segment(&data)).unwrap().len(),
            before,
            "{case}: nothing is cut off a damaged log"
        );
    }

    // A damaged length field in the middle: also named.
    let data = dir.path().join("length");
    copy_dir(&good, &data);
    let (start, _) = records[30];
    flip(&segment(&data), start + 3);
    let err = serve_fails(&data);
    assert!(err.contains(&format!("at byte {start}")), "{err}");

    // The undamaged copy still starts.
    let server = Server::start(&good, &["--projections", ""]).await;
    drop(server);
}

/// What the queries answer, for comparison before and after damage.
async fn answers(server: &Server) -> Vec<(String, u16, Value)> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for path in [
        "/v1/customers/cust-0-1",
        "/v1/customers/cust-1-2/timeline",
        "/v1/lookup?kind=account&value=acc-store-3-0",
        "/v1/cases?limit=1000",
        "/v1/cases/case-store-2-1",
        "/v1/interactions/int-store-4-3",
        "/v1/campaigns/camp-0",
        "/v1/campaigns/camp-1/contacts?limit=1000",
    ] {
        let r = client.get(server.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let mut body: Value = r.json().await.unwrap();
        strip_now(&mut body);
        out.push((path.to_string(), status, body));
    }
    out
}

/// Once `server` has read its store whole (in the background after its
/// start: what that finds is dealt with first) and caught up, its answers
/// to the sample queries are `before`'s.
async fn assert_same_answers(server: &Server, before: &[(String, u16, Value)], case: &str) {
    wait_store_checked(server).await;
    wait_caught_up(server).await;
    let after = answers(server).await;
    for (b, a) in before.iter().zip(&after) {
        assert!(
            b == a,
            "{case}: {} answers differently after the damage:\nbefore {} {}\nafter  {} {}",
            b.0,
            b.1,
            b.2,
            a.1,
            a.2
        );
    }
}

/// What a read-only server sees in a (damaged) store before any projector
/// runs: `None` when it refuses to serve it (the store was unreadable and has
/// been moved aside), else the projections' applied positions.
async fn probe_read_only(data: &Path) -> Option<Vec<String>> {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--read-only", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/projections");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let answer = loop {
        if child.try_wait().unwrap().is_some() {
            break None;
        }
        if let Ok(r) = reqwest::get(&url).await {
            let ps: Value = r.json().await.unwrap();
            break Some(
                ps.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| format!("{} {}", p["name"], p["position"]))
                    .collect(),
            );
        }
        assert!(std::time::Instant::now() < deadline, "read-only probe hung");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    answer
}

/// Drops the fields computed from the clock at query time.
fn strip_now(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("evaluated_at");
            m.values_mut().for_each(strip_now);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_now),
        _ => {}
    }
}

/// Overwrites `len` bytes at `at` of every file under `dir` whose name
/// starts with `prefix` (sled's `db` file, its snapshots, its `conf`); with
/// `len` 0, flips one byte in every 16 KiB of the file.
fn damage(dir: &Path, prefix: &str, at_fraction: f64, len: usize) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !path.is_file() || !name.starts_with(prefix) {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.is_empty() {
            continue;
        }
        if len == 0 {
            for b in bytes.iter_mut().step_by(16 * 1024).skip(1) {
                *b ^= 0x20;
            }
        } else {
            let at = ((bytes.len() as f64 * at_fraction) as usize).min(bytes.len() - 1);
            let end = (at + len).min(bytes.len());
            for b in &mut bytes[at..end] {
                *b ^= 0xA5;
            }
        }
        std::fs::write(&path, bytes).unwrap();
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_store_files_are_detected_and_the_read_models_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let mut server = Server::start(&good, &[]).await;
    publish(&server, "store", 6, 25).await;
    wait_caught_up(&server).await;
    let before = answers(&server).await;
    assert!(
        before.iter().all(|(_, s, _)| *s == 200),
        "the sample queries find data: {before:?}"
    );
    assert!(server.terminate().success());
    let good_positions = probe_read_only(&good).await.expect("the good store serves");

    // (what, file prefix, where in the file, how many bytes)
    let cases: [(&str, &str, f64, usize, bool); 7] = [
        ("db-scattered", "db", 0.0, 0, true),
        ("db-middle-byte", "db", 0.5, 1, false),
        ("db-start", "db", 0.0, 64, false),
        ("db-quarter-block", "db", 0.25, 4096, false),
        ("db-end", "db", 0.97, 512, false),
        ("conf", "conf", 0.0, 8, true),
        ("snapshot", "snap.", 0.5, 64, false),
    ];
    let mut detected_cases = Vec::new();
    for (case, prefix, at, len, must_detect) in cases {
        let data = dir.path().join(case);
        copy_dir(&good, &data);
        let damaged = damage(&data.join("store"), prefix, at, len);
        if damaged == 0 {
            eprintln!("store damage {case}: no {prefix}* file in this store, skipped");
            continue;
        }
        // `digest` only inspects: it reports damage and never moves the
        // store aside (nor starts it afresh).
        let out = Command::new(BIN)
            .args(["digest", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        let aside = |data: &Path| {
            std::fs::read_dir(data).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("store.damaged-")
            })
        };
        assert!(!aside(&data), "{case}: digest moved the store aside");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("damaged"), "{case}: digest failed: {err}");
        }
        // What the damage did, seen before any projector runs.
        let seen = probe_read_only(&data).await;
        let server = tokio::time::timeout(Duration::from_secs(60), Server::start(&data, &[]))
            .await
            .unwrap_or_else(|_| panic!("{case}: serve did not start on a damaged store"));
        assert_same_answers(&server, &before, case).await;
        drop(server);
        // Three outcomes, all ending with the same answers:
        // - moved aside: the store could not be read (sled's open, or the
        //   full read in the background after the start, failed); it is
        //   kept as store.damaged-TIME and the read models rebuilt from the
        //   log;
        // - rolled back: sled's recovery met the damage in its own log and
        //   stopped there (as for a torn write): the trees went back to an
        //   earlier batch, with the checkpoint of that batch, and the
        //   projectors re-applied the rest from the log;
        // - untouched: the bytes were in space sled no longer uses (it is
        //   log-structured), nothing reads them.
        let moved_aside = std::fs::read_dir(&data).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("store.damaged-")
        });
        let outcome = match (&seen, moved_aside) {
            (None, true) => "detected: store moved aside, read models rebuilt from the log",
            (Some(p), false) if *p != good_positions => {
                "detected by sled's recovery: trees rolled back to an earlier checkpoint, the rest re-applied from the log"
            }
            (Some(_), false) => "in unused space: nothing read it",
            other => panic!("{case}: unexpected probe result {other:?}"),
        };
        let detected = !outcome.starts_with("in unused");
        assert!(detected || !must_detect, "{case}: damage not detected");
        // Stopped with SIGKILL by drop; the next start is clean again and
        // the read models equal a fresh rebuild.
        assert_read_models_equal_a_rebuild(&data).await;
        eprintln!("store damage {case}: {outcome}; same answers; equal to a rebuild");
        if detected {
            detected_cases.push(case);
        }
    }
    assert!(detected_cases.len() >= 3, "{detected_cases:?}");

    // The same damage met by a server directly, with no read-only look
    // first (which moves a damaged store aside itself): sled's open, or the
    // store check the server runs in the background once it is ready, finds
    // it, and the answers are the same once that check is done.
    for (case, prefix, at, len, _) in cases {
        let data = dir.path().join(format!("{case}-served"));
        copy_dir(&good, &data);
        if damage(&data.join("store"), prefix, at, len) == 0 {
            continue;
        }
        let server = Server::start(&data, &[]).await;
        assert_same_answers(&server, &before, &format!("{case}, served directly")).await;
        drop(server);
        eprintln!("store damage {case}, served directly: same answers");
    }
}
