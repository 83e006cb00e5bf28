//! API credentials and request signing for Binance SIGNED endpoints.
//!
//! Binance accepts HMAC-SHA256 keys (signature = lowercase hex of the HMAC of
//! the payload) and Ed25519 keys (signature = standard base64 of the Ed25519
//! signature of the payload). The payload is the percent-encoded query string
//! exactly as it is sent, without the `signature` parameter; the signature is
//! appended last as `&signature=...` (percent-encoded, since base64 contains
//! `+`, `/` and `=`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// Why a key could not be loaded. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("the API key is empty or contains characters other than letters and digits")]
    ApiKey,
    #[error("the HMAC secret is empty")]
    EmptySecret,
    #[error("the Ed25519 private key is not a PKCS#8 PEM document: {0}")]
    Pem(String),
    #[error("the Ed25519 seed must be 32 bytes in base64 or hex, got {0}")]
    Seed(String),
}

/// Which kind of API key signs the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Hmac,
    Ed25519,
}

enum Secret {
    Hmac(Vec<u8>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

/// An API key and the secret that signs requests for it.
///
/// `Debug` shows only the start of the API key and never the secret.
pub struct Credentials {
    api_key: String,
    secret: Secret,
}

impl Credentials {
    /// An HMAC-SHA256 key pair as shown by Binance when the key is created.
    pub fn hmac(api_key: impl Into<String>, secret: impl Into<String>) -> Result<Self, CredentialsError> {
        let api_key = checked_api_key(api_key.into())?;
        let secret: String = secret.into();
        if secret.is_empty() {
            return Err(CredentialsError::EmptySecret);
        }
        Ok(Self { api_key, secret: Secret::Hmac(secret.into_bytes()) })
    }

    /// An Ed25519 key: the API key Binance assigned to the registered public
    /// key, and the private key as a PKCS#8 PEM document
    /// (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm ed25519` writes it).
    pub fn ed25519_pem(api_key: impl Into<String>, pem: &str) -> Result<Self, CredentialsError> {
        let api_key = checked_api_key(api_key.into())?;
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| CredentialsError::Pem(e.to_string()))?;
        Ok(Self { api_key, secret: Secret::Ed25519(Box::new(key)) })
    }

    /// An Ed25519 key from its raw 32-byte seed, written as base64 or hex.
    pub fn ed25519_seed(api_key: impl Into<String>, seed: &str) -> Result<Self, CredentialsError> {
        let api_key = checked_api_key(api_key.into())?;
        let seed = seed.trim();
        let bytes = decode_hex(seed).or_else(|| BASE64.decode(seed).ok()).ok_or_else(|| {
            CredentialsError::Seed(format!("{} characters that are neither hex nor base64", seed.len()))
        })?;
        let seed: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| CredentialsError::Seed(format!("{} bytes", bytes.len())))?;
        Ok(Self { api_key, secret: Secret::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(&seed))) })
    }

    #[must_use]
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    #[must_use]
    pub fn kind(&self) -> KeyKind {
        match self.secret {
            Secret::Hmac(_) => KeyKind::Hmac,
            Secret::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// The `signature` value for `payload` (the query string without it).
    #[must_use]
    pub fn sign(&self, payload: &str) -> String {
        match &self.secret {
            Secret::Hmac(secret) => {
                // HMAC takes keys of any length, so this cannot fail.
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                    return String::new();
                };
                mac.update(payload.as_bytes());
                hex_lower(&mac.finalize().into_bytes())
            }
            Secret::Ed25519(key) => BASE64.encode(key.sign(payload.as_bytes()).to_bytes()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.api_key.chars().take(4).collect();
        f.debug_struct("Credentials")
            .field("api_key", &format_args!("{shown}…({} chars)", self.api_key.len()))
            .field("kind", &self.kind())
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        // Best effort; the Ed25519 key zeroizes itself.
        if let Secret::Hmac(secret) = &mut self.secret {
            secret.iter_mut().for_each(|b| *b = 0);
        }
    }
}

fn checked_api_key(key: String) -> Result<String, CredentialsError> {
    let key = key.trim().to_string();
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CredentialsError::ApiKey);
    }
    Ok(key)
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Percent-encodes per RFC 3986: everything but `A-Z a-z 0-9 - _ . ~`.
#[must_use]
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `k1=v1&k2=v2` with names and values percent-encoded, in the order given.
#[must_use]
pub fn encode_query(params: &[(&str, String)]) -> String {
    params.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked HMAC example from the Binance docs (SIGNED endpoint
    /// examples for POST /api/v3/order, all parameters in the query string).
    #[test]
    fn hmac_matches_the_documented_example() {
        let creds = Credentials::hmac(
            "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
            "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
        )
        .unwrap();
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(creds.sign(payload), "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71");
    }

    #[test]
    fn ed25519_seed_and_pem_agree_and_verify() {
        use ed25519_dalek::Verifier as _;
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let seed = [7u8; 32];
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        // What `openssl genpkey -algorithm ed25519` writes: PKCS#8 v1, seed only.
        let mut der = decode_hex("302e020100300506032b657004220420").unwrap();
        der.extend_from_slice(&seed);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", BASE64.encode(&der));
        // PKCS#8 v2 with the public key, as ed25519-dalek writes it.
        let v2 = BASE64.encode(key.to_pkcs8_der().unwrap().as_bytes());
        let lines: Vec<&str> = v2.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let pem_v2 = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----", lines.join("\n"));
        assert_eq!(
            Credentials::ed25519_pem("key1", &pem_v2).unwrap().sign("x"),
            Credentials::ed25519_pem("key1", &pem).unwrap().sign("x")
        );
        let a = Credentials::ed25519_pem("key1", &pem).unwrap();
        let b = Credentials::ed25519_seed("key1", &hex_lower(&seed)).unwrap();
        let c = Credentials::ed25519_seed("key1", &BASE64.encode(seed)).unwrap();
        let payload = "symbol=BTCUSDT&timestamp=1";
        assert_eq!(a.sign(payload), b.sign(payload));
        assert_eq!(b.sign(payload), c.sign(payload));
        let sig_bytes = BASE64.decode(a.sign(payload)).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&sig_bytes).unwrap();
        assert!(key.verifying_key().verify(payload.as_bytes(), &sig).is_ok());
        assert_eq!(a.kind(), KeyKind::Ed25519);
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        assert_eq!(Credentials::hmac("", "s").unwrap_err(), CredentialsError::ApiKey);
        assert_eq!(Credentials::hmac("k", "").unwrap_err(), CredentialsError::EmptySecret);
        let e = Credentials::ed25519_seed("k", "abcd").unwrap_err();
        assert!(matches!(e, CredentialsError::Seed(_)));
        assert!(!e.to_string().contains("abcd"));
        assert!(Credentials::ed25519_pem("k", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let creds = Credentials::hmac("ABCDEFGHIJ", "supersecretvalue").unwrap();
        let shown = format!("{creds:?}");
        assert!(!shown.contains("supersecretvalue"), "{shown}");
        assert!(!shown.contains("ABCDEFGHIJ"), "{shown}");
        assert!(shown.contains("ABCD"), "{shown}");
        let ed = Credentials::ed25519_seed("KEY", &hex_lower(&[9u8; 32])).unwrap();
        assert!(!format!("{ed:?}").contains("0909"));
    }

    #[test]
    fn query_encoding() {
        assert_eq!(percent_encode("a:b/c+d=e f~"), "a%3Ab%2Fc%2Bd%3De%20f~");
        let q = encode_query(&[("symbol", "BTCUSDT".into()), ("newClientOrderId", "bot-1:x".into())]);
        assert_eq!(q, "symbol=BTCUSDT&newClientOrderId=bot-1%3Ax");
    }
}
