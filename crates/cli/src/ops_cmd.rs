//! Operations commands: `tradecore healthcheck` (for container health
//! checks: the runtime image has no curl).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to ask (plain http); healthy when it answers 2xx.
    #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
    pub url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// `GET url`: Ok when the answer is 2xx, an error saying what came back otherwise.
pub fn healthcheck(args: &HealthcheckArgs) -> Result<()> {
    let rest = args.url.strip_prefix("http://").context("the URL must start with http:// (a local listener)")?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let timeout = Duration::from_secs(args.timeout.max(1));
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: tradecore-healthcheck\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer).with_context(|| format!("no answer from {}", args.url))?;
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if (200..300).contains(&status) {
        println!("healthy: {} answered {status}", args.url);
        Ok(())
    } else {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
        bail!("unhealthy: {} answered {status} {body}", args.url)
    }
}
