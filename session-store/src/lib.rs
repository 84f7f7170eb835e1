//! Encrypted sessions for the OIDC filter, usable without Envoy.
//!
//! - [`Sealer`]: AES-256-GCM sealed cookie values under a rotating [`KeyRing`], the
//!   cookie name as associated data; opening never panics and does no I/O.
//! - [`Session`]: who the user is, their tokens (secret newtypes), and lifetimes.
//! - [`Sessions`]: ticket in the cookie (session id + per-session data key), record in a
//!   [`SessionStore`] under `HMAC(key, id)` encrypted with the data key, decrypted copy in
//!   the [`SessionCache`] consulted synchronously on every request.
//! - Stores: [`MemoryStore`] (embedded default) and [`RedisStore`] (shared, reconnecting,
//!   pub/sub revocations).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod keys;
mod memo;
mod seal;
mod secret;
mod session;
mod sessions;
pub mod store;
mod ticket;

pub use cache::SessionCache;
pub use keys::{KeyError, KeyId, KeyRing, MIN_SECRET_LEN};
pub use seal::{OpenError, SealError, Sealer, MAX_SEALED_LEN};
pub use secret::{AccessToken, IdToken, Key32, RefreshToken};
pub use session::{Claims, Derived, LeftInStore, Lifetimes, Session, Tokens, MAX_SESSION_BYTES};
pub use sessions::{Check, OpenedTicket, SessionError, Sessions};
pub use store::deferred::DeferredStore;
pub use store::memory::MemoryStore;
pub use store::redis::{ClusterTarget, NodeAuth, RedisConfig, RedisStore, RedisTarget, RedisTls, SentinelTarget};
pub use store::{LockToken, Revocation, SessionStore, StoreError};
pub use ticket::{decrypt_record, encrypt_record, IndexKey, RecordError, SessionId, StoreKey, Ticket};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
