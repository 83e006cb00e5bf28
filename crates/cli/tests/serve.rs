//! `tradecore serve` as a real process: it starts on the embedded defaults,
//! answers over HTTP, and stops cleanly on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, tradecore};

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

#[test]
fn serve_starts_on_defaults_answers_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("tradecore-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = Server::spawn(common::serve("127.0.0.1:0").current_dir(&dir).env_remove("TRADECORE_DATABASE__URL"));
    let addr = server.base.strip_prefix("http://").expect("serve printed its address").to_string();
    let metrics = server.output.lock().unwrap().iter().find_map(|line| {
        line.strip_prefix("metrics on http://").and_then(|rest| rest.strip_suffix("/metrics")).map(str::to_string)
    });
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
    let check = tradecore().args(["healthcheck", "--url", &ready]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let (status, body) = get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"database\":\"sqlite\""), "{body}");
    // The embedded default: SQLite under ./data.
    assert!(dir.join("data/tradecore.db").exists());

    let common::Stopped { status, stderr } = server.stop();
    assert!(status.success(), "exit status {status}; stderr: {stderr}");
    assert!(stderr.contains("flushing the journal"), "{stderr}");
    let check = tradecore().args(["healthcheck", "--url", &ready]).output().unwrap();
    assert!(!check.status.success(), "a stopped server is not healthy");
    assert!(String::from_utf8_lossy(&check.stderr).contains("cannot connect"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_is_refused_with_the_key() {
    let out = tradecore().args(["config", "show"]).env("TRADECORE_SERVER__LISTN", "0.0.0.0:1").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TRADECORE_SERVER__LISTN"), "{stderr}");
    let out = tradecore().args(["serve", "--database-url", "mysql://nope"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database"), "{stderr}");
}
