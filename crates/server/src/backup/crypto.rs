//! Backup encryption and signing.
//!
//! Data: AES-256-GCM in 1 MiB chunks (the STREAM construction): each chunk
//! has its own nonce, a random 7-byte prefix per backup, then the chunk's
//! number and a last-chunk flag, so chunks cannot be reordered, repeated,
//! dropped or the file cut short without decryption failing. The layout is
//! the magic `TCBKP1`, the nonce prefix, then per chunk its sealed length
//! (u32, big-endian) and the sealed bytes.
//!
//! Manifests: HMAC-SHA256 under a key derived from the backup key, so a
//! manifest cannot be altered without the key either.

use std::io::{Read, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 1 << 20;
const MAGIC: &[u8; 6] = b"TCBKP1";
const PREFIX: usize = 7;
const AAD: &[u8] = b"tradecore backup v1";
/// AES-GCM's tag.
const TAG: usize = 16;

/// The key from its configured text: 64 hex digits or base64 of 32 bytes.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32).map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0)).collect::<Vec<_>>()
    } else {
        base64_decode(t).ok_or("must be 32 bytes as 64 hex digits or base64 (openssl rand -hex 32)")?
    };
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be 32 bytes; this is {} (openssl rand -hex 32 makes one)", bytes.len()))
}

/// Standard or URL-safe base64, padded or not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let unpadded = text.trim_end_matches('=');
    STANDARD_NO_PAD.decode(unpadded).or_else(|_| URL_SAFE_NO_PAD.decode(unpadded)).ok()
}

/// A short fingerprint of the key, stored in manifests: a restore with
/// another key is refused with a clear message instead of a decryption error.
#[must_use]
pub fn key_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"tradecore backup key id");
    h.update(key);
    crate::auth::to_hex(&h.finalize())[..16].to_string()
}

fn nonce(prefix: &[u8; PREFIX], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..PREFIX + 4].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Reads until `buf` is full or the input ends; returns how much it read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match reader.read(&mut buf[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read)
}

/// Encrypts everything `input` yields into `output`; returns the bytes written.
pub fn encrypt(key: &[u8; 32], mut input: impl Read, mut output: impl Write) -> Result<u64, String> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?;
    let mut prefix = [0u8; PREFIX];
    getrandom::fill(&mut prefix).map_err(|e| format!("no randomness for the nonce: {e}"))?;
    output.write_all(MAGIC).and_then(|()| output.write_all(&prefix)).map_err(|e| e.to_string())?;
    let mut written = (MAGIC.len() + PREFIX) as u64;
    let mut current = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut current_len = fill(&mut input, &mut current).map_err(|e| e.to_string())?;
    let mut counter = 0u32;
    loop {
        // Look one chunk ahead: the last one is sealed as last.
        let next_len = if current_len == CHUNK { fill(&mut input, &mut next).map_err(|e| e.to_string())? } else { 0 };
        let last = next_len == 0;
        let sealed = cipher
            .encrypt(&Nonce::from(nonce(&prefix, counter, last)), Payload { msg: &current[..current_len], aad: AAD })
            .map_err(|_| "encryption failed".to_string())?;
        let len = u32::try_from(sealed.len()).map_err(|_| "chunk too large".to_string())?;
        output.write_all(&len.to_be_bytes()).and_then(|()| output.write_all(&sealed)).map_err(|e| e.to_string())?;
        written += 4 + sealed.len() as u64;
        if last {
            break;
        }
        counter = counter.checked_add(1).ok_or("backup too large (over 4 PiB)")?;
        std::mem::swap(&mut current, &mut next);
        current_len = next_len;
    }
    output.flush().map_err(|e| e.to_string())?;
    Ok(written)
}

/// Decrypts what [`encrypt`] wrote; fails on a wrong key or on any change,
/// reordering or truncation of the data.
pub fn decrypt(key: &[u8; 32], mut input: impl Read, mut output: impl Write) -> Result<u64, String> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?;
    let mut header = [0u8; MAGIC.len() + PREFIX];
    input.read_exact(&mut header).map_err(|_| "not a tradecore backup (too short)".to_string())?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err("not a tradecore backup (wrong magic)".to_string());
    }
    let mut prefix = [0u8; PREFIX];
    prefix.copy_from_slice(&header[MAGIC.len()..]);
    let mut counter = 0u32;
    let mut written = 0u64;
    let mut len_bytes = [0u8; 4];
    let mut sealed = Vec::with_capacity(CHUNK + TAG);
    loop {
        if fill(&mut input, &mut len_bytes).map_err(|e| e.to_string())? != 4 {
            return Err("the backup is cut short (no last chunk)".to_string());
        }
        let len = u32::from_be_bytes(len_bytes) as usize;
        if !(TAG..=CHUNK + TAG).contains(&len) {
            return Err("the backup is damaged (a chunk has an impossible length)".to_string());
        }
        sealed.resize(len, 0);
        input.read_exact(&mut sealed).map_err(|_| "the backup is cut short".to_string())?;
        // Try as a middle chunk, then as the last one.
        let open =
            |last| cipher.decrypt(&Nonce::from(nonce(&prefix, counter, last)), Payload { msg: &sealed, aad: AAD });
        let (plain, last) = match open(false) {
            Ok(p) => (p, false),
            Err(_) => {
                (open(true).map_err(|_| "cannot decrypt: a wrong key, or the backup was changed".to_string())?, true)
            }
        };
        output.write_all(&plain).map_err(|e| e.to_string())?;
        written += plain.len() as u64;
        if last {
            let mut extra = [0u8; 1];
            if input.read(&mut extra).map_err(|e| e.to_string())? != 0 {
                return Err("the backup has data after its last chunk".to_string());
            }
            break;
        }
        counter = counter.checked_add(1).ok_or("the backup has too many chunks")?;
    }
    output.flush().map_err(|e| e.to_string())?;
    Ok(written)
}

/// HMAC-SHA256 of `data` under a key derived from the backup key, as hex.
#[must_use]
pub fn sign(key: &[u8; 32], data: &[u8]) -> String {
    let mut derived = Sha256::new();
    derived.update(b"tradecore backup manifest");
    derived.update(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&derived.finalize())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    crate::auth::to_hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7; 32];

    fn round_trip(data: &[u8]) -> Vec<u8> {
        let mut sealed = Vec::new();
        encrypt(&KEY, data, &mut sealed).unwrap();
        let mut plain = Vec::new();
        decrypt(&KEY, sealed.as_slice(), &mut plain).unwrap();
        plain
    }

    #[test]
    fn round_trips_at_chunk_edges() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 5] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(round_trip(&data), data, "length {len}");
        }
    }

    #[test]
    fn changes_cuts_and_wrong_keys_are_refused() {
        let data: Vec<u8> = (0..2 * CHUNK + 10).map(|i| (i % 7) as u8).collect();
        let mut sealed = Vec::new();
        encrypt(&KEY, data.as_slice(), &mut sealed).unwrap();
        let fails = |bytes: &[u8], key: &[u8; 32]| decrypt(key, bytes, std::io::sink()).unwrap_err();
        assert!(fails(&sealed, &[8; 32]).contains("wrong key"));
        let mut flipped = sealed.clone();
        flipped[100] ^= 1;
        assert!(fails(&flipped, &KEY).contains("changed"));
        // Cut after the first (full) chunk: no chunk is marked last.
        let first = 13 + 4 + CHUNK + TAG;
        assert!(fails(&sealed[..first], &KEY).contains("cut short"));
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(fails(&longer, &KEY).contains("after its last chunk"));
        assert!(fails(b"nope", &KEY).contains("not a tradecore backup"));
        // Two encryptions of the same data differ (fresh nonces).
        let mut again = Vec::new();
        encrypt(&KEY, data.as_slice(), &mut again).unwrap();
        assert_ne!(again, sealed);
    }

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(parse_key(&hex).unwrap()[31], 255);
        assert_eq!(parse_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap(), [0; 32]);
        assert!(parse_key("abcd").unwrap_err().contains("32 bytes"));
        assert!(parse_key("not base64!!").is_err());
        assert_eq!(key_id(&KEY).len(), 16);
        assert_ne!(key_id(&KEY), key_id(&[8; 32]));
        assert_ne!(sign(&KEY, b"a"), sign(&KEY, b"b"));
    }

    proptest! {
        #[test]
        fn any_data_round_trips(data in prop::collection::vec(any::<u8>(), 0..5000)) {
            prop_assert_eq!(round_trip(&data), data);
        }
    }
}
