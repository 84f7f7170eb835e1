//! Sessions end to end: sealed ticket in the cookie, encrypted record in the store, the
//! decrypted session in the process cache.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::SessionCache;
use crate::keys::KeyRing;
use crate::seal::{OpenError, SealError, Sealer};
use crate::session::Session;
use crate::store::{LockToken, SessionStore, StoreError};
use crate::ticket::{decrypt_record, encrypt_record, IndexKey, RecordError, StoreKey, Ticket};

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session could not be encrypted (too large, no randomness).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The cookie could not be sealed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The OS random source failed.
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
}

/// An opened session cookie: the ticket and where its session lives.
#[derive(Clone, Debug)]
pub struct OpenedTicket {
    ticket: Ticket,
    key: StoreKey,
}

impl OpenedTicket {
    /// The session's store key.
    pub fn store_key(&self) -> StoreKey {
        self.key
    }
}

/// The synchronous per-request verdict on a session cookie.
#[derive(Debug)]
pub enum Check {
    /// A live session from the cache.
    Hit(Arc<Session>, OpenedTicket),
    /// An authentic cookie whose session is not cached here: load it from the store.
    Miss(OpenedTicket),
    /// Forged, altered, expired or foreign cookie: no session.
    Invalid(OpenError),
}

/// The session service of one filter config (clones share the store, cache and keys).
#[derive(Clone)]
pub struct Sessions {
    /// Tells this service's memo entries from other configs' on the same worker.
    id: u64,
    sealer: Sealer,
    store: Arc<dyn SessionStore>,
    cache: SessionCache,
    cookie_name: String,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cookie_name", &self.cookie_name)
            .field("cache", &self.cache)
            .finish()
    }
}

impl Sessions {
    /// Sessions sealed under `ring` for the cookie `cookie_name`, stored in `store`.
    pub fn new(ring: Arc<KeyRing>, store: Arc<dyn SessionStore>, cache: SessionCache, cookie_name: String) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            sealer: Sealer::new(ring),
            store,
            cache,
            cookie_name,
        }
    }

    /// The cookie codec (also used for the login-flow cookie).
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The session cookie's name (its associated data when sealing).
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// The in-process cache.
    pub fn cache(&self) -> &SessionCache {
        &self.cache
    }

    /// Every request: open the cookie (no I/O) and look the session up in the cache. A
    /// cookie this worker opened before under the same keys is not decrypted again.
    pub fn check(&self, cookie_value: &str, now: u64) -> Check {
        let generation = self.sealer.generation();
        let opened = match crate::memo::get(self.id, cookie_value, generation, now) {
            Some(opened) => opened,
            None => {
                let (ticket, kid, expires_at) =
                    match self.sealer.open_until::<Ticket>(&self.cookie_name, cookie_value, now) {
                        Ok(v) => v,
                        Err(e) => return Check::Invalid(e),
                    };
                let ring = self.sealer.ring();
                let Some(ring_key) = ring.by_id(kid) else {
                    return Check::Invalid(OpenError::UnknownKey);
                };
                let key = StoreKey::derive(ring_key, &ticket.id);
                let opened = OpenedTicket { ticket, key };
                crate::memo::put(self.id, cookie_value, opened.clone(), generation, expires_at);
                opened
            }
        };
        let key = opened.key;
        match self.cache.get(&key) {
            Some(s) if s.is_live(now) => Check::Hit(s, opened),
            _ => Check::Miss(opened),
        }
    }

    /// Loads a session missing from the cache; `None` if it ended or never existed.
    pub async fn load(&self, t: &OpenedTicket, now: u64) -> Result<Option<Arc<Session>>, SessionError> {
        let start = self.cache.read_start();
        let Some(session) = self.stored(t).await? else {
            return Ok(None);
        };
        if !session.is_live(now) {
            return Ok(None);
        }
        let session = Arc::new(session);
        // Revoked while it was being read: the store no longer has it either.
        if !self.cache.insert_read(t.key, session.clone(), start) && self.cache.was_revoked(&t.key) {
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// The session as stored; `None` if absent or not readable under this ticket.
    async fn stored(&self, t: &OpenedTicket) -> Result<Option<Session>, SessionError> {
        let Some(record) = self.store.get(&t.key).await? else {
            return Ok(None);
        };
        match decrypt_record(&t.ticket, &t.key, &record) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                tracing::warn!(key = ?t.key, error = %e, "stored session does not decrypt under its ticket; ignoring it");
                Ok(None)
            }
        }
    }

    /// Stores a new session under a fresh id; returns the cookie value to set.
    pub async fn create(
        &self,
        session: Session,
        now: u64,
    ) -> Result<(String, OpenedTicket, Arc<Session>), SessionError> {
        let ticket = Ticket::generate()?;
        let ring = self.sealer.ring();
        let key = StoreKey::derive(ring.primary(), &ticket.id);
        let cookie = Sealer::seal_under(&ring, &self.cookie_name, &ticket, session.absolute_expires_at)?;
        let opened = OpenedTicket { ticket, key };
        let record = encrypt_record(&opened.ticket, &opened.key, &session)?;
        let (ttl, index) = self.placement(&session, now);
        self.store.put(&opened.key, &record, ttl, &index).await?;
        let session = Arc::new(session);
        self.cache.insert(opened.key, session.clone());
        Ok((cookie, opened, session))
    }

    fn placement(&self, session: &Session, now: u64) -> (Duration, Vec<IndexKey>) {
        let ttl = Duration::from_secs(session.expires_at().saturating_sub(now).max(1));
        (ttl, IndexKey::of(self.sealer.ring().primary(), session))
    }

    /// Writes a changed session (refreshed tokens, new idle expiry) and caches it, unless
    /// the cache already holds a later use of it: two writes of one session may finish
    /// out of order, and the cache must never move back to the older one. `None` if the
    /// session ended meanwhile (signed out, logged out by the IdP): it stays ended.
    pub async fn save(
        &self,
        t: &OpenedTicket,
        session: Session,
        now: u64,
    ) -> Result<Option<Arc<Session>>, SessionError> {
        let session = if session.is_partial() {
            // A cached copy marked used: the stored session with its new use times (the
            // tokens there may be newer, refreshed by another replica).
            let Some(mut full) = self.stored(t).await? else {
                self.cache.apply(crate::store::Revocation::Session(t.key));
                return Ok(None);
            };
            full.last_used_at = full.last_used_at.max(session.last_used_at);
            full.idle_expires_at = full.idle_expires_at.max(session.idle_expires_at);
            full
        } else {
            session
        };
        let record = encrypt_record(&t.ticket, &t.key, &session)?;
        let (ttl, index) = self.placement(&session, now);
        if !self.store.update(&t.key, &record, ttl, &index).await? {
            self.cache.apply(crate::store::Revocation::Session(t.key));
            return Ok(None);
        }
        let session = Arc::new(session);
        match self.cache.get(&t.key) {
            Some(cached) if cached.last_used_at > session.last_used_at => Ok(Some(cached)),
            _ => Ok(self.cache.insert(t.key, session.clone()).then_some(session)),
        }
    }

    /// Ends one session everywhere.
    pub async fn delete(&self, t: &OpenedTicket) -> Result<(), SessionError> {
        self.cache.apply(crate::store::Revocation::Session(t.key));
        self.store.delete(&t.key).await?;
        Ok(())
    }

    /// Ends every session of an IdP session id (`sid`, back-channel logout).
    pub async fn delete_by_sid(&self, issuer: &str, sid: &str) -> Result<usize, SessionError> {
        self.delete_indexed(IndexKey::sid_all(&self.sealer.ring(), issuer, sid))
            .await
    }

    /// Records a one-time id (a logout token's `jti`) for `ttl`: true the first time it is
    /// seen by any instance sharing the store. The store sees only a keyed hash of it.
    pub async fn first_sighting(&self, kind: &str, id: &str, ttl: Duration) -> Result<bool, SessionError> {
        let key = StoreKey(self.sealer.ring().primary().mac(kind.as_bytes(), id.as_bytes()));
        Ok(self.store.first_sighting(&key, ttl).await?)
    }

    /// Ends every session of a subject.
    pub async fn delete_by_subject(&self, issuer: &str, subject: &str) -> Result<usize, SessionError> {
        self.delete_indexed(IndexKey::subject_all(&self.sealer.ring(), issuer, subject))
            .await
    }

    async fn delete_indexed(&self, keys: Vec<IndexKey>) -> Result<usize, SessionError> {
        let mut n = 0;
        for ik in keys {
            for k in self.store.delete_indexed(&ik).await? {
                self.cache.apply(crate::store::Revocation::Session(k));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Takes the session's short exclusive lock (refresh single-flight across replicas).
    pub async fn try_lock(&self, t: &OpenedTicket, ttl: Duration) -> Result<Option<LockToken>, SessionError> {
        Ok(self.store.try_lock(&t.key, ttl).await?)
    }

    /// Releases the session's lock.
    pub async fn unlock(&self, t: &OpenedTicket, token: &LockToken) -> Result<(), SessionError> {
        Ok(self.store.unlock(&t.key, token).await?)
    }

    /// Keeps the cache in step with revocations from every instance; spawn it once.
    pub fn follow_revocations(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.cache.clone().follow(self.store.revocations())
    }
}
