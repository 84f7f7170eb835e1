//! Where a secret comes from: inline (tests only, discouraged), a file, or the environment.

use serde::Deserialize;
use zeroize::Zeroizing;

/// A secret's source in the config. Exactly one of the three.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// The value itself (visible in the Envoy config: prefer `file` or `env`).
    Inline(String),
    /// A file holding the value (trailing newline removed), e.g. a mounted Kubernetes secret.
    File(String),
    /// An environment variable of the Envoy process.
    Env(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline([redacted])"),
            SecretSource::File(p) => write!(f, "File({p:?})"),
            SecretSource::Env(v) => write!(f, "Env({v:?})"),
        }
    }
}

/// A secret that may be replaced while the filter runs (its file changed): readers take
/// the value in force, without locking.
pub struct Live<T>(arc_swap::ArcSwap<T>);

impl<T> Live<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Self(arc_swap::ArcSwap::from_pointee(value))
    }

    /// The value in force.
    pub fn get(&self) -> std::sync::Arc<T> {
        self.0.load_full()
    }

    /// Puts `value` in force.
    pub fn set(&self, value: T) {
        self.0.store(std::sync::Arc::new(value));
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.load().fmt(f)
    }
}

/// The OAuth client secret: zeroized on drop, `Debug` redacted, no `Display`.
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// The secret itself; never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl From<Zeroizing<String>> for ClientSecret {
    fn from(v: Zeroizing<String>) -> Self {
        Self(v)
    }
}

impl SecretSource {
    /// Reads the secret; the error says where it looked, never the value.
    pub fn load(&self) -> Result<Zeroizing<String>, String> {
        let value = match self {
            SecretSource::Inline(v) => v.clone(),
            SecretSource::File(path) => {
                let bytes = super::fields::read_bounded(path).map_err(|e| format!("secret file: {e}"))?;
                String::from_utf8(bytes).map_err(|_| format!("secret file {path:?} is not UTF-8"))?
            }
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| format!("environment variable {var:?} is not set"))?
            }
        };
        let value = Zeroizing::new(value.trim_end_matches(['\n', '\r']).to_owned());
        if value.is_empty() {
            return Err("secret is empty".into());
        }
        Ok(value)
    }
}
