//! Venue credentials at rest: API keys and secrets (Binance), OAuth client
//! secrets and refresh tokens (TastyTrade), sealed with AES-256-GCM under
//! `trading.credentials_key` before they reach the database.
//!
//! Each sealed value is `base64(nonce || ciphertext)` with a random 96-bit
//! nonce; the additional data binds it to its owner, venue, label and
//! environment, so a sealed value copied onto another row does not open.
//! The key's fingerprint is stored beside it: a server started with another
//! key says so instead of calling the data corrupt. [`rotate`] re-seals
//! everything under a new key in one transaction.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use model::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::Store;
use store::auth::{AuditEntry, UserId};
use store::venue_credentials::{Resealed, VenueCredentialRow};

const NONCE: usize = 12;
const AAD_PREFIX: &str = "tradecore venue credential v1";

/// The key credentials are sealed with. `Debug` shows its fingerprint only.
#[derive(Clone)]
pub struct CredentialsKey {
    key: [u8; 32],
    id: String,
}

impl fmt::Debug for CredentialsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialsKey({})", self.id)
    }
}

impl CredentialsKey {
    /// From its configured text: 64 hex digits or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let key = crate::backup::crypto::parse_key(text)?;
        let mut h = Sha256::new();
        h.update(b"tradecore credentials key id");
        h.update(key);
        let id = crate::auth::to_hex(&h.finalize())[..16].to_string();
        Ok(Self { key, id })
    }

    /// The key's fingerprint, stored beside what it sealed.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The venues credentials can be linked for, and their environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Venue {
    Binance,
    Tastytrade,
}

impl Venue {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Binance => "binance",
            Self::Tastytrade => "tastytrade",
        }
    }

    /// Its environments, the safe one first (the default).
    #[must_use]
    pub const fn environments(self) -> &'static [&'static str] {
        match self {
            Self::Binance => &["testnet", "production"],
            Self::Tastytrade => &["sandbox", "production"],
        }
    }
}

/// What is sealed. `Debug` never shows the secret parts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VenueSecret {
    /// A Binance API key with its HMAC secret.
    BinanceHmac { api_key: String, api_secret: String },
    /// A Binance API key with its Ed25519 private key (PKCS#8 PEM).
    BinanceEd25519 { api_key: String, private_key: String },
    /// A TastyTrade OAuth client and the user's refresh token.
    Tastytrade { client_id: String, client_secret: String, refresh_token: String },
}

impl fmt::Debug for VenueSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BinanceHmac { api_key, .. } => write!(f, "BinanceHmac({}, secret: [redacted])", hint(api_key)),
            Self::BinanceEd25519 { api_key, .. } => {
                write!(f, "BinanceEd25519({}, private key: [redacted])", hint(api_key))
            }
            Self::Tastytrade { client_id, .. } => {
                write!(f, "Tastytrade({}, client secret and refresh token: [redacted])", hint(client_id))
            }
        }
    }
}

impl VenueSecret {
    #[must_use]
    pub const fn venue(&self) -> Venue {
        match self {
            Self::BinanceHmac { .. } | Self::BinanceEd25519 { .. } => Venue::Binance,
            Self::Tastytrade { .. } => Venue::Tastytrade,
        }
    }

    /// The public identifier's last characters, for telling credentials apart.
    #[must_use]
    pub fn key_hint(&self) -> String {
        match self {
            Self::BinanceHmac { api_key, .. } | Self::BinanceEd25519 { api_key, .. } => hint(api_key),
            Self::Tastytrade { client_id, .. } => hint(client_id),
        }
    }
}

/// `…` and the last four characters (all of a value of eight or fewer is never shown).
fn hint(public: &str) -> String {
    let chars: Vec<char> = public.chars().collect();
    if chars.len() <= 8 {
        return "…".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("…{tail}")
}

/// Where a sealed value belongs; bound into its encryption.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub user_id: UserId,
    pub venue: &'a str,
    pub label: &'a str,
    pub environment: &'a str,
}

impl Owner<'_> {
    fn aad(&self) -> Vec<u8> {
        format!("{AAD_PREFIX}\0{}\0{}\0{}\0{}", self.user_id, self.venue, self.label, self.environment).into_bytes()
    }

    #[must_use]
    pub fn of(row: &VenueCredentialRow) -> Owner<'_> {
        Owner { user_id: row.user_id, venue: &row.venue, label: &row.label, environment: &row.environment }
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed under another key (fingerprint {stored}; the configured trading.credentials_key is {configured})")]
    OtherKey { stored: String, configured: String },
    #[error("the sealed value is damaged or was moved from another credential")]
    Damaged,
}

/// Seals `secret` for `owner` under `key`.
pub fn seal(key: &CredentialsKey, owner: &Owner<'_>, secret: &VenueSecret) -> Result<String, String> {
    let plain = serde_json::to_vec(secret).map_err(|e| format!("cannot encode the credential: {e}"))?;
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce: {e}"))?;
    let cipher = Aes256Gcm::new_from_slice(&key.key).map_err(|e| e.to_string())?;
    let aad = owner.aad();
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: &plain, aad: &aad })
        .map_err(|_| "encryption failed".to_string())?;
    let mut out = Vec::with_capacity(NONCE + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(BASE64.encode(out))
}

/// Opens a stored credential with `key`.
pub fn open(key: &CredentialsKey, row: &VenueCredentialRow) -> Result<VenueSecret, OpenError> {
    if row.key_id != key.id {
        return Err(OpenError::OtherKey { stored: row.key_id.clone(), configured: key.id.clone() });
    }
    open_sealed(key, &Owner::of(row), &row.sealed)
}

fn open_sealed(key: &CredentialsKey, owner: &Owner<'_>, sealed: &str) -> Result<VenueSecret, OpenError> {
    let bytes = BASE64.decode(sealed).map_err(|_| OpenError::Damaged)?;
    if bytes.len() <= NONCE {
        return Err(OpenError::Damaged);
    }
    let (nonce, body) = bytes.split_at(NONCE);
    let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| OpenError::Damaged)?;
    let cipher = Aes256Gcm::new_from_slice(&key.key).map_err(|_| OpenError::Damaged)?;
    let aad = owner.aad();
    let plain =
        cipher.decrypt(&Nonce::from(nonce), Payload { msg: body, aad: &aad }).map_err(|_| OpenError::Damaged)?;
    serde_json::from_slice(&plain).map_err(|_| OpenError::Damaged)
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Credentials re-sealed under the new key.
    pub resealed: usize,
    /// Credentials already under the new key (a rotation run twice).
    pub already: usize,
}

/// Re-seals every stored credential from `old` to `new`, all in one
/// transaction: on any error nothing changes. A credential under neither
/// key stops the rotation, naming it.
pub async fn rotate(
    store: &Store,
    old: &CredentialsKey,
    new: &CredentialsKey,
    now: Timestamp,
) -> Result<Rotation, String> {
    if old.id == new.id {
        return Err("the new key is the configured key; generate another (tradecore secrets new-key)".into());
    }
    let rows = store.all_venue_credentials().await.map_err(|e| format!("cannot read the credentials: {e}"))?;
    let mut resealed = Vec::with_capacity(rows.len());
    let mut already = 0;
    for row in &rows {
        let owner = Owner::of(row);
        let secret = if row.key_id == new.id {
            // Kept in the transaction unchanged, so the count check covers it.
            open_sealed(new, &owner, &row.sealed)
                .map_err(|e| format!("credential {} ({} '{}'): {e}", row.id, row.venue, row.label))?
        } else {
            open(old, row).map_err(|e| format!("credential {} ({} '{}'): {e}", row.id, row.venue, row.label))?
        };
        if row.key_id == new.id {
            already += 1;
            resealed.push(Resealed {
                id: row.id,
                old_key_id: row.key_id.clone(),
                key_id: row.key_id.clone(),
                sealed: row.sealed.clone(),
            });
            continue;
        }
        resealed.push(Resealed {
            id: row.id,
            old_key_id: row.key_id.clone(),
            key_id: new.id.clone(),
            sealed: seal(new, &owner, &secret)?,
        });
    }
    let detail = serde_json::json!({ "from": old.id, "to": new.id, "credentials": rows.len() });
    let audit = AuditEntry::new(now, None, "venue_credentials.rotate", None).detail(detail);
    store.reseal_venue_credentials(&resealed, now, &audit).await.map_err(|e| e.to_string())?;
    Ok(Rotation { resealed: rows.len() - already, already })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> CredentialsKey {
        CredentialsKey::parse(&format!("{byte:02x}").repeat(32)).unwrap()
    }

    fn row(k: &CredentialsKey, owner: &Owner<'_>, secret: &VenueSecret) -> VenueCredentialRow {
        VenueCredentialRow {
            id: 1,
            user_id: owner.user_id,
            venue: owner.venue.into(),
            label: owner.label.into(),
            environment: owner.environment.into(),
            key_hint: secret.key_hint(),
            key_id: k.id().into(),
            sealed: seal(k, owner, secret).unwrap(),
            created: Timestamp::from_nanos(0),
            updated: Timestamp::from_nanos(0),
        }
    }

    const OWNER: Owner<'static> = Owner { user_id: 7, venue: "binance", label: "main", environment: "testnet" };

    fn secret() -> VenueSecret {
        VenueSecret::BinanceHmac {
            api_key: "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A".into(),
            api_secret: "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j".into(),
        }
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_owner() {
        let k = key(1);
        let r = row(&k, &OWNER, &secret());
        assert_eq!(open(&k, &r).unwrap(), secret());
        assert!(!r.sealed.contains("NhqPtmd"), "ciphertext, not the secret");
        // Another key is named, not taken for damage.
        assert!(matches!(open(&key(2), &r), Err(OpenError::OtherKey { .. })));
        // Moved to another user, label or environment: does not open.
        for moved in [
            Owner { user_id: 8, ..OWNER },
            Owner { label: "other", ..OWNER },
            Owner { environment: "production", ..OWNER },
        ] {
            assert_eq!(open_sealed(&k, &moved, &r.sealed), Err(OpenError::Damaged));
        }
        // A flipped bit.
        let mut bytes = BASE64.decode(&r.sealed).unwrap();
        bytes[20] ^= 1;
        assert_eq!(open_sealed(&k, &OWNER, &BASE64.encode(bytes)), Err(OpenError::Damaged));
        // Two seals of one secret differ (fresh nonces).
        assert_ne!(seal(&k, &OWNER, &secret()).unwrap(), r.sealed);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let shown = format!("{:?} {:?}", secret(), key(3));
        assert!(!shown.contains("NhqPtmd") && !shown.contains("vmPUZE6"), "{shown}");
        assert!(shown.contains("…Eh8A"), "{shown}");
        let tasty = VenueSecret::Tastytrade {
            client_id: "short".into(),
            client_secret: "cs-very-secret".into(),
            refresh_token: "rt-very-secret".into(),
        };
        let shown = format!("{tasty:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("short"), "{shown}");
    }
}
