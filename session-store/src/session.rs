//! The session model: who the user is, their tokens, and when the session ends.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::secret::{AccessToken, IdToken, RefreshToken};

/// Largest encoded session accepted by the store (tokens included).
pub const MAX_SESSION_BYTES: usize = 64 * 1024;

/// Claims kept for identity headers and authorization rules; every value is a list of
/// strings (a single-valued claim is a list of one). A few entries sorted by name: a
/// vector costs far less memory per cached session than a map node.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims(Vec<(String, Vec<String>)>);

impl Claims {
    /// Sets a claim (replacing an earlier value).
    pub fn insert(&mut self, name: impl Into<String>, values: Vec<String>) {
        let name = name.into();
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.0[i].1 = values,
            Err(i) => self.0.insert(i, (name, values)),
        }
    }
    /// Removes a claim.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }
    /// Every value of a claim.
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_slice())
    }
    /// The first value of a claim.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.first()).map(String::as_str)
    }
    /// Claim names, for logs (values are personal data and stay out of logs).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// The tokens of a session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Access token.
    pub access: AccessToken,
    /// When the access token expires (unix seconds), if the IdP said.
    pub access_expires_at: Option<u64>,
    /// Refresh token, if the IdP issued one.
    pub refresh: Option<RefreshToken>,
    /// ID token, for `id_token_hint` at logout.
    pub id_token: Option<IdToken>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access", &true)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh", &self.refresh.is_some())
            .field("id_token", &self.id_token.is_some())
            .finish()
    }
}

/// One signed-in user's session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `sub` of the ID token.
    pub subject: String,
    /// `iss` of the ID token.
    pub issuer: String,
    /// `sid` of the ID token (back-channel logout), if any.
    pub sid: Option<String>,
    /// Claims for headers and rules.
    pub claims: Claims,
    /// Tokens.
    pub tokens: Tokens,
    /// Creation time (unix seconds).
    pub created_at: u64,
    /// Last time the session was seen in use.
    pub last_used_at: u64,
    /// The session ends at this time whatever happens.
    pub absolute_expires_at: u64,
    /// The session ends at this time unless used again.
    pub idle_expires_at: u64,
    /// When the current access token was received (its lifetime bounds how early it is
    /// refreshed). Last, so records written before it existed still decode (as `V1`).
    pub access_received_at: Option<u64>,
    /// What the caller derives from this session (its identity headers), made once per
    /// cached copy; never stored.
    #[serde(skip)]
    pub derived: Derived,
    /// Tokens this copy does not hold (a cached copy); never stored.
    #[serde(skip)]
    pub left_in_store: LeftInStore,
}

/// Tokens a cached copy leaves in the store because requests never read them there. A
/// copy missing any cannot be written back ([`crate::encrypt_record`] refuses it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeftInStore {
    /// The access token (kept when it is forwarded upstream).
    pub access: bool,
    /// The refresh token.
    pub refresh: bool,
    /// The ID token.
    pub id_token: bool,
}

impl Session {
    /// A copy for the cache without the tokens requests never read: the refresh and ID
    /// tokens, and the access token unless `keep_access`. About two thirds of a session
    /// with JWT-sized tokens.
    pub fn for_cache(&self, keep_access: bool) -> Session {
        let left = LeftInStore {
            access: self.left_in_store.access || !keep_access,
            refresh: self.left_in_store.refresh || self.tokens.refresh.is_some(),
            id_token: self.left_in_store.id_token || self.tokens.id_token.is_some(),
        };
        let access = if left.access {
            AccessToken::new(String::new())
        } else {
            self.tokens.access.clone()
        };
        Session {
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            sid: self.sid.clone(),
            claims: self.claims.clone(),
            tokens: Tokens {
                access,
                access_expires_at: self.tokens.access_expires_at,
                refresh: None,
                id_token: None,
            },
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            absolute_expires_at: self.absolute_expires_at,
            idle_expires_at: self.idle_expires_at,
            access_received_at: self.access_received_at,
            derived: Derived::default(),
            left_in_store: left,
        }
    }

    /// True if this copy lacks tokens the stored session has.
    pub fn is_partial(&self) -> bool {
        self.left_in_store != LeftInStore::default()
    }

    /// True if the session has a refresh token (here or in the store).
    pub fn has_refresh(&self) -> bool {
        self.tokens.refresh.is_some() || self.left_in_store.refresh
    }
}

/// A value derived from a session by its user, computed on first use. Never stored or
/// compared; a clone starts empty, so a changed copy (refreshed claims) derives anew.
#[derive(Default)]
pub struct Derived(OnceLock<Arc<dyn Any + Send + Sync>>);

impl Derived {
    /// The value, made by `make` on first use; `None` if it was first made as another type.
    pub fn get_or_init<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Arc::new(make())).downcast_ref::<T>()
    }
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Derived {}

impl fmt::Debug for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Derived(made)"
        } else {
            "Derived(empty)"
        })
    }
}

/// A session as stored before `access_received_at` existed; read, never written.
#[derive(Deserialize)]
pub(crate) struct SessionV1 {
    subject: String,
    issuer: String,
    sid: Option<String>,
    claims: Claims,
    tokens: Tokens,
    created_at: u64,
    last_used_at: u64,
    absolute_expires_at: u64,
    idle_expires_at: u64,
}

impl From<SessionV1> for Session {
    fn from(v: SessionV1) -> Self {
        Session {
            subject: v.subject,
            issuer: v.issuer,
            sid: v.sid,
            claims: v.claims,
            tokens: v.tokens,
            created_at: v.created_at,
            last_used_at: v.last_used_at,
            absolute_expires_at: v.absolute_expires_at,
            idle_expires_at: v.idle_expires_at,
            access_received_at: None,
            derived: Derived::default(),
            left_in_store: LeftInStore::default(),
        }
    }
}

/// Session lifetimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// Longest life of a session.
    pub absolute_secs: u64,
    /// Longest time without use.
    pub idle_secs: u64,
}

impl Session {
    /// A new session at `now` with the given lifetimes.
    pub fn new(
        subject: String,
        issuer: String,
        sid: Option<String>,
        claims: Claims,
        tokens: Tokens,
        now: u64,
        life: Lifetimes,
    ) -> Self {
        let absolute = now.saturating_add(life.absolute_secs);
        Self {
            subject,
            issuer,
            sid,
            claims,
            tokens,
            created_at: now,
            last_used_at: now,
            absolute_expires_at: absolute,
            idle_expires_at: now.saturating_add(life.idle_secs).min(absolute),
            access_received_at: Some(now),
            derived: Derived::default(),
            left_in_store: LeftInStore::default(),
        }
    }

    /// When the session ends if nothing else happens.
    pub fn expires_at(&self) -> u64 {
        self.absolute_expires_at.min(self.idle_expires_at)
    }

    /// Whether the session is still valid at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at()
    }

    /// Records use at `now`, pushing the idle expiry (never past the absolute one).
    pub fn touch(&mut self, now: u64, life: Lifetimes) {
        self.last_used_at = now;
        self.idle_expires_at = now.saturating_add(life.idle_secs).min(self.absolute_expires_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let mut claims = Claims::default();
        claims.insert("email", vec!["alice@example.com".into()]);
        Session::new(
            "alice".into(),
            "https://idp".into(),
            Some("sid-1".into()),
            claims,
            Tokens {
                access: AccessToken::new("access-SECRET".into()),
                access_expires_at: Some(100),
                refresh: Some(RefreshToken::new("refresh-SECRET".into())),
                id_token: Some(IdToken::new("idtoken-SECRET".into())),
            },
            1_000,
            Lifetimes {
                absolute_secs: 3_600,
                idle_secs: 600,
            },
        )
    }

    #[test]
    fn debug_shows_presence_never_values() {
        let shown = format!("{:?} {:#?}", session(), session());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains("alice@example.com"), "claim values stay out: {shown}");
        assert!(shown.contains("refresh: true") && shown.contains("\"email\""));
    }

    #[test]
    fn claims_insert_replace_and_lookup() {
        let mut c = Claims::default();
        c.insert("groups", vec!["a".into(), "b".into()]);
        c.insert("email", vec!["x@y".into()]);
        c.insert("groups", vec!["c".into()]);
        assert_eq!(c.get("groups"), Some(&["c".to_owned()][..]));
        assert_eq!(c.first("email"), Some("x@y"));
        assert_eq!(c.get("missing"), None);
        assert_eq!(c.names().collect::<Vec<_>>(), vec!["email", "groups"]);
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let life = Lifetimes {
            absolute_secs: 3_600,
            idle_secs: 600,
        };
        let mut s = session();
        assert!(s.is_live(1_599) && !s.is_live(1_600), "idle timeout");
        s.touch(1_500, life);
        assert!(s.is_live(2_099));
        s.touch(4_500, life);
        assert_eq!(s.expires_at(), 4_600, "idle never passes absolute");
        assert!(!s.is_live(4_600));
    }
}
