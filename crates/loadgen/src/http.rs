//! A minimal HTTP/1.1 client over one keep-alive TCP connection: just what
//! the load generator sends (JSON requests) and reads (bodies with
//! `Content-Length` or chunked). Hand-written so that the client spends as
//! little of the shared CPU as possible per request.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// An answer: status, the headers the load generator looks at, the body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub set_cookie: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One connection, reused for every request (keep-alive).
pub struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
    out: Vec<u8>,
    line: String,
}

impl Conn {
    /// Connects to `host:port`.
    pub async fn connect(host: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(host).await?;
        // Requests are single small writes: no Nagle delay.
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::with_capacity(16 * 1024, stream),
            host: host.to_string(),
            out: Vec::new(),
            line: String::new(),
        })
    }

    /// Sends one request and reads its answer. `headers` are extra header
    /// lines (`Name: value`).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        use std::io::Write as _;
        self.out.clear();
        write!(self.out, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host)?;
        for h in headers {
            write!(self.out, "{h}\r\n")?;
        }
        match body {
            Some(b) => {
                write!(self.out, "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", b.len())?;
                self.out.extend_from_slice(b);
            }
            None => self.out.extend_from_slice(b"\r\n"),
        }
        self.stream.get_mut().write_all(&self.out).await?;
        self.read_response(method == "HEAD").await
    }

    async fn read_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        if self.stream.read_line(&mut self.line).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        Ok(self.line.trim_end())
    }

    async fn read_response(&mut self, head: bool) -> io::Result<Response> {
        let status_line = self.read_line().await?;
        let status: u16 =
            status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("bad status line"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut set_cookie = None;
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else { return Err(bad("bad header line")) };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("set-cookie") {
                set_cookie = Some(value.to_string());
            }
        }
        let mut body = Vec::new();
        if head || status == 204 || status == 304 || (100..200).contains(&status) {
            // No body by definition.
        } else if chunked {
            loop {
                let size_line = self.read_line().await?;
                let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the blank line.
                    while !self.read_line().await?.is_empty() {}
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                self.read_line().await?;
            }
        } else {
            let n = length.ok_or_else(|| bad("an answer without a length"))?;
            body.resize(n, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok(Response { status, set_cookie, body })
    }
}
