//! `tradecore serve` as a real process: it starts on the embedded defaults,
//! answers over HTTP, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

/// Kills the server if the test fails before it stops it.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn serve_starts_on_defaults_answers_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("tradecore-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tradecore"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env_remove("TRADECORE_DATABASE__URL")
        .env("TRADECORE_METRICS__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let mut metrics = None;
    let addr = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("metrics on http://") {
            metrics = rest.strip_suffix("/metrics").map(str::to_string);
        }
        if let Some(rest) = line.strip_prefix("tradecore is listening on http://") {
            break rest.trim().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "serve did not start");
    };
    assert_eq!(get(&addr, "/healthz"), (200, "ok".to_string()));
    // Metrics on their own listener, not on the public port.
    let metrics = metrics.expect("serve printed its metrics address");
    let (status, text) = get(&metrics, "/metrics");
    assert_eq!(status, 200);
    for name in ["tradecore_http_requests_total", "process_resident_memory_bytes", "tradecore_feed_lag_seconds"] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert_eq!(get(&addr, "/metrics").0, 404, "the public port does not serve metrics");
    // The container health check.
    let ready = format!("http://{addr}/readyz");
    let check = Command::new(env!("CARGO_BIN_EXE_tradecore")).args(["healthcheck", "--url", &ready]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let (status, body) = get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"database\":\"sqlite\""), "{body}");
    // The embedded default: SQLite under ./data.
    assert!(dir.join("data/tradecore.db").exists());

    let kill = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "exit status {status}; stderr: {stderr}");
    assert!(stderr.contains("flushing the journal"), "{stderr}");
    let check = Command::new(env!("CARGO_BIN_EXE_tradecore")).args(["healthcheck", "--url", &ready]).output().unwrap();
    assert!(!check.status.success(), "a stopped server is not healthy");
    assert!(String::from_utf8_lossy(&check.stderr).contains("cannot connect"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_is_refused_with_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_tradecore"))
        .args(["config", "show"])
        .env("TRADECORE_SERVER__LISTN", "0.0.0.0:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TRADECORE_SERVER__LISTN"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_tradecore"))
        .args(["serve", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database"), "{stderr}");
}
