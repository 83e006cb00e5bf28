//! The dashboard's static files (`web/assets/`), served under a versioned
//! path `/assets/{version}/...`.
//!
//! The version is a hash of every file, so a page always loads the files of
//! the binary that rendered it, and browsers may cache them for a year
//! (`immutable`): a new build has new URLs. ES modules import each other
//! with relative paths, so they stay within one version. Text files are
//! gzipped once, when the table is built, not per request.
//!
//! `rust-embed` reads the files from disk in debug builds (the table is
//! built at the first request, so a restart picks up edits) and embeds them
//! in release builds: the binary needs nothing beside it.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Everything under `web/`: `assets/` is served, `layout.html` and `pages/`
/// are the page templates.
#[derive(rust_embed::Embed)]
#[folder = "web/"]
pub(crate) struct Files;

/// One served file.
#[derive(Debug)]
pub struct Asset {
    pub bytes: Vec<u8>,
    /// The gzip encoding, when it is smaller.
    pub gzip: Option<Vec<u8>>,
    pub content_type: &'static str,
    etag: String,
}

/// Every served file by its path under `assets/`, and the version hash.
#[derive(Debug)]
pub struct Assets {
    pub version: String,
    pub files: HashMap<String, Asset>,
}

impl Assets {
    /// The URL prefix of this build's files: `/assets/{version}`.
    #[must_use]
    pub fn base(&self) -> String {
        format!("/assets/{}", self.version)
    }
}

/// The asset table, built once.
pub fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(load)
}

fn load() -> Assets {
    let mut paths: Vec<String> = Files::iter().filter_map(|p| p.strip_prefix("assets/").map(str::to_string)).collect();
    // Sorted, so the version does not depend on the order files are listed in.
    paths.sort();
    let mut version = Sha256::new();
    let mut files = HashMap::with_capacity(paths.len());
    for path in paths {
        let Some(file) = Files::get(&format!("assets/{path}")) else { continue };
        let bytes = file.data.into_owned();
        version.update(path.as_bytes());
        version.update([0]);
        version.update(&bytes);
        let content_type = content_type(&path);
        let gzip = compressible(content_type).then(|| gzip(&bytes)).flatten().filter(|g| g.len() < bytes.len());
        let etag = format!("\"{}\"", &crate::auth::to_hex(&Sha256::digest(&bytes))[..16]);
        files.insert(path, Asset { bytes, gzip, content_type, etag });
    }
    let version = crate::auth::to_hex(&version.finalize())[..12].to_string();
    Assets { version, files }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/") || content_type.contains("json") || content_type.contains("svg")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            // `gzip;q=0` means "not gzip".
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
    })
}

/// `GET /assets/{version}/{*path}`.
pub async fn serve(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let table = assets();
    let Some(asset) = table.files.get(&path) else {
        return (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-store")], "no such file").into_response();
    };
    // A page rendered by an older build may ask for its version: answer the
    // current file, but do not let it be cached under the old URL for long.
    let cache = if version == table.version { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = if headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag.as_bytes() == asset.etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match (&asset.gzip, accepts_gzip(&headers)) {
            (Some(gzip), true) => {
                let mut r = Body::from(gzip.clone()).into_response();
                r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            _ => Body::from(asset.bytes.clone()).into_response(),
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(tag) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, tag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_accepted_unless_refused() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_asset_has_a_known_type_and_text_is_compressed() {
        let table = assets();
        assert_eq!(table.version.len(), 12);
        assert!(!table.files.is_empty());
        for (path, asset) in &table.files {
            assert_ne!(asset.content_type, "application/octet-stream", "{path}: unknown type");
            if path.ends_with(".js") && asset.bytes.len() > 4096 {
                assert!(asset.gzip.is_some(), "{path} is not compressed");
            }
        }
    }
}
