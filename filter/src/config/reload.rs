//! Secrets that follow their files: the client secret, the `private_key_jwt` key and the
//! session keys are read again when a file they come from changes (a Kubernetes secret
//! volume updated in place, a rotation job), and put in force without reloading Envoy's
//! config. Each is validated as at load; a bad file keeps the previous value.
//!
//! Envoy's SDS is not used: the dynamic-module filter's protos (Envoy 1.40) have no field
//! declaring a secret to subscribe to, so files are what a module can follow.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use session_store::KeyRing;

use super::fields::read_bounded;
use super::idp::{signing_key, RawClientAuth};
use super::secret::{ClientSecret, SecretSource};
use super::{err, ConfigError};
use crate::oidc::client_auth::SigningKey;

/// A secret read again from its file.
pub enum Renewed {
    /// `client_secret`.
    ClientSecret(ClientSecret),
    /// `client_auth.private_key`.
    ClientKey(SigningKey),
    /// `session.keys` (the first seals).
    SessionKeys(KeyRing),
}

impl Renewed {
    /// The config field it comes from.
    pub fn field(&self) -> &'static str {
        match self {
            Renewed::ClientSecret(_) => "client_secret",
            Renewed::ClientKey(_) => "client_auth.private_key",
            Renewed::SessionKeys(_) => "session.keys",
        }
    }
}

/// The secrets of one config that come from files, and what those files held last.
pub struct SecretFiles {
    /// How often the files are read; zero: never.
    pub interval: Duration,
    client_secret: Option<SecretSource>,
    client_key: Option<RawClientAuth>,
    session_keys: Option<Vec<SecretSource>>,
    /// A hash of each file's content when last read (its change is what counts).
    seen: Mutex<HashMap<String, u64>>,
}

fn file_of(s: &SecretSource) -> Option<&str> {
    match s {
        SecretSource::File(path) => Some(path),
        SecretSource::Inline(_) | SecretSource::Env(_) => None,
    }
}

/// The content's fingerprint; `None` when the file cannot be read now (mid-swap).
fn fingerprint(path: &str) -> Option<u64> {
    let bytes = zeroize::Zeroizing::new(read_bounded(path).ok()?);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

impl SecretFiles {
    pub(super) fn new(
        interval: Duration,
        client_secret: Option<&SecretSource>,
        client_key: &RawClientAuth,
        session_keys: &[SecretSource],
    ) -> Self {
        let files = Self {
            interval,
            client_secret: client_secret.filter(|s| file_of(s).is_some()).cloned(),
            client_key: client_key
                .private_key
                .as_ref()
                .is_some_and(|s| file_of(s).is_some())
                .then(|| client_key.clone()),
            session_keys: session_keys
                .iter()
                .any(|s| file_of(s).is_some())
                .then(|| session_keys.to_vec()),
            seen: Mutex::new(HashMap::new()),
        };
        // What was read at load is the starting point.
        let _ = files.changed_paths();
        files
    }

    /// Whether any secret comes from a file (and is followed).
    pub fn any(&self) -> bool {
        !self.interval.is_zero()
            && (self.client_secret.is_some() || self.client_key.is_some() || self.session_keys.is_some())
    }

    fn paths(&self) -> impl Iterator<Item = &str> {
        let secret = self.client_secret.iter().filter_map(file_of);
        let key = self
            .client_key
            .iter()
            .filter_map(|k| k.private_key.as_ref().and_then(file_of));
        let session = self.session_keys.iter().flatten().filter_map(file_of);
        secret.chain(key).chain(session)
    }

    /// The files whose content changed since the last call.
    fn changed_paths(&self) -> Vec<String> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        for path in self.paths() {
            let Some(now) = fingerprint(path) else { continue };
            if seen.insert(path.to_owned(), now).is_some_and(|before| before != now) {
                changed.push(path.to_owned());
            }
        }
        changed
    }

    /// Reads the files again (blocking: run it off Envoy's workers) and returns each
    /// secret whose file changed, read and validated as at load, or why it cannot be used.
    pub fn poll(&self) -> Vec<Result<Renewed, ConfigError>> {
        let changed = self.changed_paths();
        let touched = |s: &SecretSource| file_of(s).is_some_and(|p| changed.iter().any(|c| c == p));
        let mut out = Vec::new();
        if let Some(s) = self.client_secret.as_ref().filter(|s| touched(s)) {
            out.push(
                s.load()
                    .map(|v| Renewed::ClientSecret(ClientSecret::from(v)))
                    .map_err(|e| err("client_secret", e)),
            );
        }
        if let Some(raw) = self
            .client_key
            .as_ref()
            .filter(|k| k.private_key.as_ref().is_some_and(touched))
        {
            out.push(signing_key(raw).and_then(|k| {
                k.map(Renewed::ClientKey)
                    .ok_or_else(|| err("client_auth.private_key", "missing"))
            }));
        }
        if let Some(keys) = self.session_keys.as_ref().filter(|k| k.iter().any(touched)) {
            out.push(super::parse::key_ring(keys).map(Renewed::SessionKeys));
        }
        out
    }
}
