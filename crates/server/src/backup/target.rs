//! Where backups are kept: a local directory, or an S3-compatible bucket
//! (AWS S3, Backblaze B2, Wasabi, MinIO) spoken to directly over HTTP with
//! AWS Signature Version 4, so no cloud SDK is needed.
//!
//! `file:///var/lib/tradecore/backups`
//! `s3://BUCKET/PREFIX?region=us-east-1` (AWS, virtual-hosted addressing)
//! `s3://BUCKET/PREFIX?endpoint=https://s3.example.com&region=auto` (others;
//! path-style addressing unless `addressing=virtual`)

use std::path::PathBuf;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use model::Timestamp;
use sha2::{Digest, Sha256};

use crate::auth::to_hex;

/// A backup target.
#[derive(Debug, Clone)]
pub enum Target {
    Local(PathBuf),
    S3(S3),
}

#[derive(Debug, Clone)]
pub struct S3 {
    bucket: String,
    /// Object names start with this (empty, or ending in `/`).
    prefix: String,
    region: String,
    /// `https://s3.us-east-1.amazonaws.com` or the configured endpoint.
    endpoint: String,
    path_style: bool,
    access_key: String,
    secret_key: String,
    http: reqwest::Client,
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

impl Target {
    /// Reads a target URL; S3 needs the credentials.
    pub fn parse(url: &str, credentials: Option<(&str, &str)>) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "'{url}': a file target needs an absolute path, as in file:///var/lib/tradecore/backups"
                ));
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(format!("'{url}' is not a backup target: use file:///PATH or s3://BUCKET/PREFIX"));
        };
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(format!("'{url}' names no bucket"));
        }
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let region = query_param(query, "region").unwrap_or("us-east-1").to_string();
        let (endpoint, path_style) = match query_param(query, "endpoint") {
            Some(endpoint) => {
                let endpoint = percent_decode(endpoint).trim_end_matches('/').to_string();
                if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                    return Err(format!(
                        "the endpoint of '{url}' must start with https:// (or http:// on a private network)"
                    ));
                }
                (endpoint, query_param(query, "addressing") != Some("virtual"))
            }
            None => (format!("https://s3.{region}.amazonaws.com"), query_param(query, "addressing") == Some("path")),
        };
        let (access_key, secret_key) =
            credentials.ok_or("an s3:// target needs backup.s3_access_key_id and backup.s3_secret_access_key")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        Ok(Self::S3(S3 {
            bucket: bucket.to_string(),
            prefix,
            region,
            endpoint,
            path_style,
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            http,
        }))
    }

    /// Where backups go, for messages (no credentials).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Local(dir) => format!("file://{}", dir.display()),
            Self::S3(s3) => format!("s3://{}/{} at {}", s3.bucket, s3.prefix, s3.endpoint),
        }
    }

    /// Stores an object, replacing one of the same name.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        match self {
            Self::Local(dir) => {
                let (dir, name) = (dir.clone(), name.to_string());
                tokio::task::spawn_blocking(move || -> Result<(), String> {
                    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    // Written aside, then renamed: a crash never leaves half a file under the name.
                    let partial = dir.join(format!(".{name}.partial"));
                    std::fs::write(&partial, &bytes).map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
                    let file = std::fs::File::open(&partial).map_err(|e| e.to_string())?;
                    file.sync_all().map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
                    std::fs::rename(&partial, dir.join(&name)).map_err(|e| format!("cannot rename into {name}: {e}"))
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Self::S3(s3) => s3.request(reqwest::Method::PUT, name, bytes).await.map(|_| ()),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Local(dir) => {
                let path = dir.join(name);
                tokio::fs::read(&path).await.map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            Self::S3(s3) => s3.request(reqwest::Method::GET, name, Vec::new()).await,
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), String> {
        match self {
            Self::Local(dir) => {
                let path = dir.join(name);
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(format!("cannot delete {}: {e}", path.display())),
                }
            }
            Self::S3(s3) => s3.request(reqwest::Method::DELETE, name, Vec::new()).await.map(|_| ()),
        }
    }

    /// The names of every object (the prefix taken off), sorted.
    pub async fn list(&self) -> Result<Vec<String>, String> {
        let mut names = match self {
            Self::Local(dir) => match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
            },
            Self::S3(s3) => s3.list().await?,
        };
        names.sort();
        Ok(names)
    }
}

// ---------------------------------------------------------------------------
// S3

impl S3 {
    fn url_and_host(&self, key: Option<&str>, query: &str) -> (String, String, String) {
        let host_of = |endpoint: &str| endpoint.split_once("://").map_or(endpoint, |(_, h)| h).to_string();
        let key_path =
            key.map(|k| format!("/{}", uri_encode(&format!("{}{k}", self.prefix), false))).unwrap_or_default();
        let (url, host, path) = if self.path_style {
            let path =
                format!("/{}{}", self.bucket, if key_path.is_empty() { "/".to_string() } else { key_path.clone() });
            (format!("{}{path}", self.endpoint), host_of(&self.endpoint), path)
        } else {
            let (scheme, host) = self.endpoint.split_once("://").unwrap_or(("https", &self.endpoint));
            let host = format!("{}.{host}", self.bucket);
            let path = if key_path.is_empty() { "/".to_string() } else { key_path };
            (format!("{scheme}://{host}{path}"), host, path)
        };
        let url = if query.is_empty() { url } else { format!("{url}?{query}") };
        (url, host, path)
    }

    /// A signed request for one object (or, with no key, the bucket).
    async fn send(
        &self,
        method: reqwest::Method,
        key: Option<&str>,
        query: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let mut pairs: Vec<(String, String)> =
            query.iter().map(|(k, v)| (uri_encode(k, true), uri_encode(v, true))).collect();
        pairs.sort();
        let canonical_query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let (url, host, path) = self.url_and_host(key, &canonical_query);
        let now = crate::accounts::wall_clock();
        let (date, stamp) = amz_date(now);
        let payload_hash = to_hex(&Sha256::digest(&body));
        let canonical_headers = format!("host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{stamp}\n");
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical_request =
            format!("{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", to_hex(&Sha256::digest(canonical_request.as_bytes())));
        let key_date = hmac(format!("AWS4{}", self.secret_key).as_bytes(), date.as_bytes());
        let key_region = hmac(&key_date, self.region.as_bytes());
        let key_service = hmac(&key_region, b"s3");
        let key_signing = hmac(&key_service, b"aws4_request");
        let signature = to_hex(&hmac(&key_signing, string_to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key
        );
        let response = self
            .http
            .request(method.clone(), &url)
            .header("x-amz-date", &stamp)
            .header("x-amz-content-sha256", &payload_hash)
            .header("authorization", authorization)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{method} {}: {e}", self.describe_key(key)))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| format!("{method} {}: {e}", self.describe_key(key)))?.to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        let text = String::from_utf8_lossy(&bytes);
        let code = xml_values(&text, "Code").into_iter().next().unwrap_or_default();
        let message = xml_values(&text, "Message").into_iter().next().unwrap_or_default();
        Err(format!("{method} {}: {status} {code} {message}", self.describe_key(key)).trim().to_string())
    }

    fn describe_key(&self, key: Option<&str>) -> String {
        format!("s3://{}/{}{}", self.bucket, self.prefix, key.unwrap_or(""))
    }

    async fn request(&self, method: reqwest::Method, name: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
        self.send(method, Some(name), &[], body).await
    }

    async fn list(&self) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2".to_string()), ("prefix", self.prefix.clone())];
            if let Some(t) = &token {
                query.push(("continuation-token", t.clone()));
            }
            let body = self.send(reqwest::Method::GET, None, &query, Vec::new()).await?;
            let text = String::from_utf8_lossy(&body);
            for key in xml_values(&text, "Key") {
                if let Some(name) = key.strip_prefix(&self.prefix)
                    && !name.is_empty()
                    && !name.contains('/')
                {
                    names.push(name.to_string());
                }
            }
            let truncated = xml_values(&text, "IsTruncated").first().is_some_and(|v| v == "true");
            token = xml_values(&text, "NextContinuationToken").into_iter().next();
            if !truncated || token.is_none() {
                return Ok(names);
            }
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` in UTC.
fn amz_date(t: Timestamp) -> (String, String) {
    let secs = t.as_nanos().div_euclid(1_000_000_000);
    let (y, m, d) = model::time::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let date = format!("{y:04}{m:02}{d:02}");
    (date.clone(), format!("{date}T{:02}{:02}{:02}Z", s / 3600, s % 3600 / 60, s % 60))
}

/// SigV4's URI encoding: unreserved characters stay, everything else is
/// %XX; `/` stays in paths (`query = false`).
fn uri_encode(text: &str, query: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (b == b'/' && !query) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The texts of every `<tag>...</tag>` in `xml`, entities decoded (S3's
/// answers are simple enough not to need a parser).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_clear_errors() {
        assert!(matches!(Target::parse("file:///var/backups", None), Ok(Target::Local(_))));
        assert!(Target::parse("file://relative", None).unwrap_err().contains("absolute path"));
        assert!(Target::parse("ftp://x", None).unwrap_err().contains("file:///PATH or s3://"));
        assert!(Target::parse("s3://bucket/p", None).unwrap_err().contains("s3_access_key_id"));
        let Ok(Target::S3(aws)) = Target::parse("s3://b/daily/?region=eu-west-1", Some(("a", "s"))) else { panic!() };
        assert_eq!(
            (aws.endpoint.as_str(), aws.path_style, aws.prefix.as_str()),
            ("https://s3.eu-west-1.amazonaws.com", false, "daily/")
        );
        let (url, host, _) = aws.url_and_host(Some("x y.json"), "");
        assert_eq!(
            (url.as_str(), host.as_str()),
            ("https://b.s3.eu-west-1.amazonaws.com/daily/x%20y.json", "b.s3.eu-west-1.amazonaws.com")
        );
        let Ok(Target::S3(minio)) =
            Target::parse("s3://b?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=auto", Some(("a", "s")))
        else {
            panic!()
        };
        assert!(minio.path_style);
        assert_eq!(minio.url_and_host(Some("k"), "").0, "http://127.0.0.1:9000/b/k");
        assert!(Target::parse("s3://b?endpoint=ftp://x", Some(("a", "s"))).unwrap_err().contains("https://"));
    }

    /// AWS's published example (Signature Version 4, "GET Object" with a
    /// range header left out): the signing key derivation and hex digests.
    #[test]
    fn signing_key_matches_aws_documentation() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let k = hmac(format!("AWS4{secret}").as_bytes(), b"20120215");
        let k = hmac(&k, b"us-east-1");
        let k = hmac(&k, b"iam");
        let k = hmac(&k, b"aws4_request");
        assert_eq!(to_hex(&k), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
        assert_eq!(
            amz_date(Timestamp::from_secs(1_329_264_000)),
            ("20120215".to_string(), "20120215T000000Z".to_string())
        );
        assert_eq!(uri_encode("a b/c+d", false), "a%20b/c%2Bd");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(xml_values("<R><Key>a&amp;b</Key><Key>c</Key></R>", "Key"), ["a&b", "c"]);
    }
}
