//! Sealed cookie values: AES-256-GCM under the key ring, the cookie name as associated
//! data, a version byte, an expiry inside the ciphertext, base64url without padding.
//!
//! Layout before base64: `version (1) | key id (4) | nonce (12) | ciphertext+tag`.
//! One codec serves the session cookie and the short-lived login-flow cookie.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Nonce;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, KeyRing};

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Browsers keep about 4096 bytes per cookie (name and attributes included).
pub const MAX_SEALED_LEN: usize = 4000;

/// Why a sealed value could not be opened. None of these does I/O or panics.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Longer than any value this codec produces.
    #[error("sealed value too large")]
    Oversized,
    /// Not base64url, or shorter than header + nonce + tag.
    #[error("sealed value malformed")]
    Malformed,
    /// Sealed by a format version this build does not know.
    #[error("sealed value has unsupported version {0}")]
    UnsupportedVersion(u8),
    /// Sealed with a key no longer (or never) in the ring.
    #[error("sealed value uses an unknown key")]
    UnknownKey,
    /// Authentication failed: altered bytes, wrong cookie name, or a forged value.
    #[error("sealed value failed authentication")]
    Tampered,
    /// Authentic, but past its expiry.
    #[error("sealed value expired")]
    Expired,
    /// Authentic, but its payload does not decode as the expected type.
    #[error("sealed value payload does not decode")]
    Payload,
}

/// Why a value could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The result would not fit in a cookie.
    #[error("sealed value would be {0} bytes, over the cookie limit")]
    TooLarge(usize),
    /// The payload did not serialize.
    #[error("payload does not serialize: {0}")]
    Encode(#[from] postcard::Error),
    /// The OS random source failed.
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
    /// The cipher refused (not reachable for in-range lengths).
    #[error("encryption failed")]
    Cipher,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    expires_at: u64,
    body: T,
}

/// Seals and opens values under a key ring (clones share it, and its replacements).
#[derive(Debug, Clone)]
pub struct Sealer {
    ring: std::sync::Arc<arc_swap::ArcSwap<KeyRing>>,
    /// Bumped at each [`Sealer::replace_ring`]: what was opened under an older ring is
    /// opened again.
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn aad(name: &str, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + name.len() + 1);
    a.extend_from_slice(header);
    a.push(b'|');
    a.extend_from_slice(name.as_bytes());
    a
}

impl Sealer {
    /// A sealer over the ring.
    pub fn new(ring: std::sync::Arc<KeyRing>) -> Self {
        Self {
            ring: std::sync::Arc::new(arc_swap::ArcSwap::new(ring)),
            generation: std::sync::Arc::default(),
        }
    }

    /// The key ring now (a lock-free read).
    pub fn ring(&self) -> arc_swap::Guard<std::sync::Arc<KeyRing>> {
        self.ring.load()
    }

    /// Puts a new ring in force (keys rotated in their files): cookies sealed under a key
    /// the new ring still holds keep opening.
    pub fn replace_ring(&self, ring: std::sync::Arc<KeyRing>) {
        self.ring.store(ring);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Which ring is in force (changes at each replacement).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Seals `body` for the cookie `name`, valid until `expires_at` (unix seconds).
    pub fn seal<T: Serialize>(&self, name: &str, body: &T, expires_at: u64) -> Result<String, SealError> {
        Self::seal_under(&self.ring(), name, body, expires_at)
    }

    /// Seals under `ring`'s primary key: the caller derived something else from that same
    /// key and a rotation in between must not split the two.
    pub fn seal_under<T: Serialize>(
        ring: &KeyRing,
        name: &str,
        body: &T,
        expires_at: u64,
    ) -> Result<String, SealError> {
        let plain = zeroize::Zeroizing::new(postcard::to_stdvec(&Envelope { expires_at, body })?);
        let key = ring.primary();
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        let mut raw = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&key.id.0);
        let aad = aad(name, &raw);
        let ct = key
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| SealError::Cipher)?;
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ct);
        let sealed = URL_SAFE_NO_PAD.encode(&raw);
        if sealed.len() > MAX_SEALED_LEN {
            return Err(SealError::TooLarge(sealed.len()));
        }
        Ok(sealed)
    }

    /// Opens a value sealed for the cookie `name`; `now` is unix seconds.
    /// Returns the body and the id of the key that sealed it.
    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str, now: u64) -> Result<(T, KeyId), OpenError> {
        self.open_until(name, sealed, now).map(|(body, id, _)| (body, id))
    }

    /// [`Sealer::open`], also returning when the sealed value expires.
    pub fn open_until<T: DeserializeOwned>(
        &self,
        name: &str,
        sealed: &str,
        now: u64,
    ) -> Result<(T, KeyId, u64), OpenError> {
        // Check the length before decoding or slicing anything.
        if sealed.len() > MAX_SEALED_LEN {
            return Err(OpenError::Oversized);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.as_bytes())
            .map_err(|_| OpenError::Malformed)?;
        if raw.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let (header, rest) = raw.split_at(HEADER_LEN);
        if header[0] != VERSION {
            return Err(OpenError::UnsupportedVersion(header[0]));
        }
        let id = KeyId([header[1], header[2], header[3], header[4]]);
        let ring = self.ring();
        let key = ring.by_id(id).ok_or(OpenError::UnknownKey)?;
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let aad = aad(name, header);
        let plain = zeroize::Zeroizing::new(
            key.aead
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                .map_err(|_| OpenError::Tampered)?,
        );
        let envelope: Envelope<T> = postcard::from_bytes(&plain).map_err(|_| OpenError::Payload)?;
        if envelope.expires_at <= now {
            return Err(OpenError::Expired);
        }
        Ok((envelope.body, id, envelope.expires_at))
    }
}
