//! The session ticket (what the cookie holds) and at-rest encryption of the session.
//!
//! The cookie holds the session id and a per-session data key, sealed; the store holds
//! `HMAC(index key, id)` → `AES-256-GCM(data key, session)`. So the store alone cannot
//! decrypt tokens, and the cookie alone holds no tokens.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::keys::{KeyRing, RingKey};
use crate::secret::Key32;
use crate::session::{Session, SessionV1, MAX_SESSION_BYTES};

/// A session id: 128 random bits, a bearer secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct SessionId([u8; 16]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// What the session cookie carries (sealed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The session id.
    pub id: SessionId,
    /// The key that encrypts the session at rest.
    pub data_key: Key32,
}

impl Ticket {
    /// A fresh ticket: new id, new data key (a new session id at every login).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)?;
        Ok(Self {
            id: SessionId(id),
            data_key: Key32::random()?,
        })
    }
}

/// Where a session lives in the store: HMAC of its id, never the id itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(pub(crate) [u8; 32]);

impl StoreKey {
    pub(crate) fn derive(key: &RingKey, id: &SessionId) -> Self {
        Self(key.mac(b"session", &id.0))
    }

    /// Lower-case hex, as stored in Redis.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses the hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines.
        write!(f, "StoreKey({}…)", &hex(&self.0[..4]))
    }
}

/// An index entry: sessions by `sid` or by subject, as an HMAC like the store key.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct IndexKey(pub(crate) String);

impl IndexKey {
    pub(crate) fn sid(key: &RingKey, issuer: &str, sid: &str) -> Self {
        Self(format!("sid:{}", hex(&key.mac(b"sid", &pair(issuer, sid)))))
    }
    pub(crate) fn subject(key: &RingKey, issuer: &str, subject: &str) -> Self {
        Self(format!("sub:{}", hex(&key.mac(b"sub", &pair(issuer, subject)))))
    }
    /// An index key from its text form, as a store holds it.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self(text.into())
    }
    /// The text form used as a store key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Every index key of a session, under one ring key.
    pub(crate) fn of(key: &RingKey, session: &Session) -> Vec<IndexKey> {
        let mut v = vec![IndexKey::subject(key, &session.issuer, &session.subject)];
        if let Some(sid) = &session.sid {
            v.push(IndexKey::sid(key, &session.issuer, sid));
        }
        v
    }
    /// The key of `sid` under every key of the ring (sessions sealed before a rotation).
    pub(crate) fn sid_all(ring: &KeyRing, issuer: &str, sid: &str) -> Vec<IndexKey> {
        ring.all().map(|k| IndexKey::sid(k, issuer, sid)).collect()
    }
    /// The key of `subject` under every key of the ring.
    pub(crate) fn subject_all(ring: &KeyRing, issuer: &str, subject: &str) -> Vec<IndexKey> {
        ring.all().map(|k| IndexKey::subject(k, issuer, subject)).collect()
    }
}

fn pair(a: &str, b: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len() + 4);
    v.extend_from_slice(&(a.len() as u32).to_be_bytes());
    v.extend_from_slice(a.as_bytes());
    v.extend_from_slice(b.as_bytes());
    v
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Why a stored record could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The session is larger than [`MAX_SESSION_BYTES`].
    #[error("session is {0} bytes, over the limit of {MAX_SESSION_BYTES}")]
    TooLarge(usize),
    /// The record is not authentic under this ticket's key (or was altered).
    #[error("stored session failed authentication")]
    Tampered,
    /// Serialization failed.
    #[error("session encoding failed")]
    Encoding,
    /// A cached copy without all its tokens: writing it would lose them.
    #[error("a cached copy of a session (without all its tokens) cannot be stored")]
    Partial,
    /// The OS random source failed.
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
}

const NONCE_LEN: usize = 12;

/// Encrypts a session under the ticket's data key, bound to its store key.
pub fn encrypt_record(ticket: &Ticket, key: &StoreKey, session: &Session) -> Result<Vec<u8>, RecordError> {
    if session.is_partial() {
        return Err(RecordError::Partial);
    }
    let plain = Zeroizing::new(postcard::to_stdvec(session).map_err(|_| RecordError::Encoding)?);
    if plain.len() > MAX_SESSION_BYTES {
        return Err(RecordError::TooLarge(plain.len()));
    }
    seal_record(ticket, key, &plain)
}

/// AES-256-GCM of an encoded session: a fresh nonce, then the ciphertext.
fn seal_record(ticket: &Ticket, key: &StoreKey, plain: &[u8]) -> Result<Vec<u8>, RecordError> {
    let cipher = Aes256Gcm::new_from_slice(ticket.data_key.secret()).map_err(|_| RecordError::Encoding)?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &key.0,
            },
        )
        .map_err(|_| RecordError::Encoding)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts a stored session with the ticket's data key.
pub fn decrypt_record(ticket: &Ticket, key: &StoreKey, record: &[u8]) -> Result<Session, RecordError> {
    if record.len() < NONCE_LEN + 16 || record.len() > MAX_SESSION_BYTES + NONCE_LEN + 16 {
        return Err(RecordError::Tampered);
    }
    let cipher = Aes256Gcm::new_from_slice(ticket.data_key.secret()).map_err(|_| RecordError::Encoding)?;
    let (nonce, ct) = record.split_at(NONCE_LEN);
    let plain = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &key.0 })
            .map_err(|_| RecordError::Tampered)?,
    );
    postcard::from_bytes(&plain)
        .or_else(|_| postcard::from_bytes::<SessionV1>(&plain).map(Session::from))
        .map_err(|_| RecordError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::AccessToken;
    use crate::session::{Claims, Tokens};

    /// The stored layout before `access_received_at`, to write a record as old versions did.
    #[derive(Serialize)]
    struct V1<'a> {
        subject: &'a str,
        issuer: &'a str,
        sid: Option<&'a str>,
        claims: Claims,
        tokens: Tokens,
        created_at: u64,
        last_used_at: u64,
        absolute_expires_at: u64,
        idle_expires_at: u64,
    }

    #[test]
    fn records_written_before_access_received_at_still_decrypt() {
        let ticket = Ticket::generate().expect("random");
        let key = StoreKey([7; 32]);
        let tokens = Tokens {
            access: AccessToken::new("at".into()),
            access_expires_at: Some(500),
            refresh: None,
            id_token: None,
        };
        let old = V1 {
            subject: "alice",
            issuer: "https://idp",
            sid: None,
            claims: Claims::default(),
            tokens,
            created_at: 100,
            last_used_at: 200,
            absolute_expires_at: 1000,
            idle_expires_at: 900,
        };
        let plain = postcard::to_stdvec(&old).expect("encode");
        let record = seal_record(&ticket, &key, &plain).expect("seal");
        let s = decrypt_record(&ticket, &key, &record).expect("an old record decrypts");
        assert_eq!(
            (s.subject.as_str(), s.last_used_at, s.access_received_at),
            ("alice", 200, None)
        );
        // And a new one round-trips with the field.
        let mut new = s.clone();
        new.access_received_at = Some(300);
        let back = decrypt_record(&ticket, &key, &encrypt_record(&ticket, &key, &new).expect("seal")).expect("open");
        assert_eq!(back.access_received_at, Some(300));
    }
}
