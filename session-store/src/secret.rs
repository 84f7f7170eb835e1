//! Secret newtypes: `Debug` prints `[redacted]`, there is no `Display`, memory is zeroized
//! on drop, and the only accessor is `secret()`.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: String) -> Self {
                Self(value)
            }
            /// The secret itself; never log it.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_string!(
    /// An OAuth 2.0 access token.
    AccessToken
);
secret_string!(
    /// An OAuth 2.0 refresh token.
    RefreshToken
);
secret_string!(
    /// An OpenID Connect ID token (kept for `id_token_hint` at logout).
    IdToken
);

/// 32 bytes of key material.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Key32(pub(crate) [u8; 32]);

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32([redacted])")
    }
}

impl Key32 {
    /// Fresh random key material from the OS.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k)?;
        Ok(Self(k))
    }

    /// The key bytes.
    pub fn secret(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let t = AccessToken::new("eyJhbGciOi.secret-token".into());
        let r = RefreshToken::new("refresh-secret".into());
        let k = Key32([7u8; 32]);
        let shown = format!("{t:?} {r:?} {k:?} {:#?}", IdToken::new("id-secret".into()));
        assert!(!shown.contains("secret-token") && !shown.contains("refresh-secret") && !shown.contains("id-secret"));
        assert!(!shown.contains("7, 7"));
        assert!(shown.contains("[redacted]"));
    }
}
