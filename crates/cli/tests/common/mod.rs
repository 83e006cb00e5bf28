//! What the CLI tests share: the real `tradecore serve` process, started on
//! a free port and stopped as an operator would (SIGTERM) or as a crash
//! does (SIGKILL).
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `tradecore` binary under test.
pub fn tradecore() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradecore"));
    cmd.env_remove("TRADECORE_CONFIG");
    cmd
}

/// `tradecore serve --listen LISTEN`, with metrics on a free port (tests run
/// side by side); add env, arguments or a working directory, then
/// [`Server::spawn`] it.
pub fn serve(listen: &str) -> Command {
    let mut cmd = tradecore();
    cmd.args(["serve", "--listen", listen]).env("TRADECORE_METRICS__LISTEN", "127.0.0.1:0");
    cmd
}

/// A running `tradecore serve`, killed on drop if the test did not stop it.
pub struct Server {
    child: Child,
    /// `http://ADDR`, as it announced it.
    pub base: String,
    /// Every line it printed to stdout so far.
    pub output: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

/// How a server stopped with [`Server::stop`] ended.
pub struct Stopped {
    pub status: ExitStatus,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Server {
    /// Starts `tradecore serve` with `env` on a free port (metrics too) and
    /// waits for the line announcing its address.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::spawn(serve("127.0.0.1:0").envs(env.iter().copied()))
    }

    /// Starts `cmd` (see [`serve`]) and waits for the line announcing its
    /// address. Its stdout and stderr are drained all along so it never
    /// blocks on them.
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("tradecore is listening on ") {
                        let base = rest.split_whitespace().next().unwrap_or_default().to_string();
                        let _ = found.send(base);
                    }
                    output.lock().unwrap().push(line);
                }
            });
        }
        let stderr_reader = {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut chunk = [0; 4096];
                while let Ok(n @ 1..) = stderr_pipe.read(&mut chunk) {
                    stderr.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            })
        };
        let mut server = Self { child, base: String::new(), output, stderr, stderr_reader: Some(stderr_reader) };
        match address.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => server.base = base,
            Err(_) => {
                server.kill();
                let (stdout, stderr) = (server.output.lock().unwrap(), server.stderr.lock().unwrap());
                panic!("serve did not start: {stdout:?}\n{stderr}");
            }
        }
        server
    }

    /// Whether it printed a line containing `needle`.
    pub fn printed(&self, needle: &str) -> bool {
        self.output.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as an operator stops it, and waits for it to exit.
    pub fn stop(mut self) -> Stopped {
        let kill = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The rest of stderr, up to the pipe's end.
        if let Some(reader) = self.stderr_reader.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Stopped { status, stderr: self.stderr.lock().unwrap().clone() }
    }

    /// Waits up to `within` for the process to exit on its own.
    pub fn exits_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: a crash, with no chance to flush or hand over.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory under the system's temporary one, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `tradecore-NAME-PID`: unique per test (by name) and per test binary.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tradecore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Signs `username` in over HTTP: a client that keeps the session cookie,
/// and the CSRF token its writes must send.
pub async fn sign_in(base: &str, username: &str, password: &str) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .header("origin", base)
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK, "sign-in as {username}");
    let login: serde_json::Value = login.json().await.unwrap();
    (http, login["csrf_token"].as_str().expect("a CSRF token").to_string())
}

/// An API token of `username` with `scopes`, made from a signed-in session.
pub async fn api_token(base: &str, username: &str, password: &str, scopes: &[&str]) -> String {
    let (http, csrf) = sign_in(base, username, password).await;
    let token = http
        .post(format!("{base}/api/v1/tokens"))
        .header("origin", base)
        .header("x-csrf-token", csrf)
        .json(&serde_json::json!({"name": "tests", "scopes": scopes}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), reqwest::StatusCode::CREATED, "{}", token.text().await.unwrap_or_default());
    let token: serde_json::Value = token.json().await.unwrap();
    token["token"].as_str().expect("a token").to_string()
}
