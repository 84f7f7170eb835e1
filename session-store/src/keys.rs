//! The key ring: the first key seals, every key opens, so keys rotate without logging
//! anyone out. Each configured secret is expanded with HKDF-SHA256 into independent keys
//! for cookie sealing and for store-key derivation, plus a public key id.

use std::fmt;

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Shortest accepted secret: 256 bits of entropy.
pub const MIN_SECRET_LEN: usize = 32;
const HKDF_SALT: &[u8] = b"envoy-oidc/session-keys/v1";

/// Why a key ring could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// No secret was configured.
    #[error("at least one session key is required")]
    Empty,
    /// Secret number `index` (0-based) is not base64 / base64url.
    #[error("session key #{index} is not base64")]
    NotBase64 {
        /// Position in the configured list.
        index: usize,
    },
    /// Secret number `index` decodes to fewer than 32 bytes.
    #[error("session key #{index} has {len} bytes; at least {MIN_SECRET_LEN} are required")]
    TooShort {
        /// Position in the configured list.
        index: usize,
        /// Decoded length.
        len: usize,
    },
    /// Two secrets derive the same key id (the same secret listed twice).
    #[error("session key #{index} duplicates an earlier key")]
    Duplicate {
        /// Position in the configured list.
        index: usize,
    },
}

/// A public identifier of a key, carried in sealed values to pick the opening key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub(crate) [u8; 4]);

/// The keys derived from one configured secret.
pub(crate) struct RingKey {
    pub(crate) id: KeyId,
    pub(crate) aead: Aes256Gcm,
    /// HMAC-SHA256 keyed once; cloned per use to skip re-keying on the hot path.
    pub(crate) index_mac: Hmac<Sha256>,
}

/// An ordered set of keys; the first one seals.
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("keys", &self.keys.len()).finish()
    }
}

fn expand(hk: &Hkdf<Sha256>, info: &[u8], out: &mut [u8]) {
    // HKDF-SHA256 can emit up to 8160 bytes; every request here is at most 32.
    hk.expand(info, out)
        .unwrap_or_else(|_| unreachable!("HKDF output length is fixed and small"));
}

impl RingKey {
    fn derive(secret: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
        let mut aead_key = Zeroizing::new([0u8; 32]);
        let mut mac_key = Zeroizing::new([0u8; 32]);
        let mut id = [0u8; 4];
        expand(&hk, b"cookie-aead", aead_key.as_mut());
        expand(&hk, b"store-index", mac_key.as_mut());
        expand(&hk, b"key-id", &mut id);
        let aead = Aes256Gcm::new_from_slice(aead_key.as_ref()).unwrap_or_else(|_| unreachable!("32-byte key"));
        let index_mac = <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        Self {
            id: KeyId(id),
            aead,
            index_mac,
        }
    }

    /// HMAC-SHA256 of `parts` (length-prefixed, so part boundaries cannot be shifted).
    pub(crate) fn mac(&self, domain: &[u8], data: &[u8]) -> [u8; 32] {
        let mut m = self.index_mac.clone();
        m.update(&(domain.len() as u32).to_be_bytes());
        m.update(domain);
        m.update(data);
        m.finalize().into_bytes().into()
    }
}

impl KeyRing {
    /// Builds a ring from raw secrets (each at least 32 bytes); the first seals.
    pub fn from_secrets<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Self, KeyError> {
        if secrets.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut keys: Vec<RingKey> = Vec::with_capacity(secrets.len());
        for (index, s) in secrets.iter().enumerate() {
            let s = s.as_ref();
            if s.len() < MIN_SECRET_LEN {
                return Err(KeyError::TooShort { index, len: s.len() });
            }
            let key = RingKey::derive(s);
            if keys.iter().any(|k| k.id == key.id) {
                return Err(KeyError::Duplicate { index });
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    /// Builds a ring from base64 (standard or URL-safe, padded or not) secrets.
    pub fn from_base64<S: AsRef<str>>(secrets: &[S]) -> Result<Self, KeyError> {
        let decoded: Vec<Zeroizing<Vec<u8>>> = secrets
            .iter()
            .enumerate()
            .map(|(index, s)| {
                decode_any_base64(s.as_ref().trim())
                    .map(Zeroizing::new)
                    .ok_or(KeyError::NotBase64 { index })
            })
            .collect::<Result<_, _>>()?;
        Self::from_secrets(&decoded.iter().map(|d| d.as_slice()).collect::<Vec<_>>())
    }

    pub(crate) fn primary(&self) -> &RingKey {
        &self.keys[0]
    }

    pub(crate) fn by_id(&self, id: KeyId) -> Option<&RingKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &RingKey> {
        self.keys.iter()
    }
}

fn decode_any_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_empty_duplicate_and_non_base64() {
        assert_eq!(KeyRing::from_secrets::<&[u8]>(&[]).err(), Some(KeyError::Empty));
        assert_eq!(
            KeyRing::from_secrets(&[[1u8; 16]]).err(),
            Some(KeyError::TooShort { index: 0, len: 16 })
        );
        assert_eq!(
            KeyRing::from_secrets(&[[1u8; 32], [1u8; 32]]).err(),
            Some(KeyError::Duplicate { index: 1 })
        );
        assert_eq!(
            KeyRing::from_base64(&["not base64 at all!"]).err(),
            Some(KeyError::NotBase64 { index: 0 })
        );
    }

    #[test]
    fn accepts_every_base64_flavour() {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        let s = base64::engine::general_purpose::STANDARD.encode([0xfbu8; 32]);
        let a = KeyRing::from_base64(&[k]).expect("url-safe");
        let b = KeyRing::from_base64(&[s]).expect("standard");
        assert_eq!(a.primary().id, b.primary().id);
    }

    #[test]
    fn derived_keys_are_independent_per_secret() {
        let ring = KeyRing::from_secrets(&[[1u8; 32], [2u8; 32]]).expect("ring");
        let ids: Vec<_> = ring.all().map(|k| k.id).collect();
        assert_ne!(ids[0], ids[1]);
        assert_ne!(
            ring.all().next().map(|k| k.mac(b"d", b"x")),
            ring.all().nth(1).map(|k| k.mac(b"d", b"x"))
        );
    }
}
