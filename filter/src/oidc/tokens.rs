//! Every JWT the filter accepts, on one stack with one algorithm allow-list: ID tokens
//! (login and refresh), access tokens (API clients' bearer) and logout tokens (back
//! channel). Claims are typed, with the rest kept in a map; each check names the spec
//! step it enforces. The three kinds are kept apart (RFC 8725 §3.11, RFC 9068 §4): an
//! ID token or a logout token signed by the same IdP is never a bearer credential, and
//! so on. A [`VerifiedIdToken`] can only come out of [`Verifier::id_token`].

use base64::Engine;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use crate::config::ProviderSettings;
use crate::oidc::provider::Provider;

/// Signature algorithms accepted on every token. Secure default: never `none`, never a
/// shared-secret (HMAC) algorithm, whatever the token's header says.
pub const ALLOWED_ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Longest `sub` accepted (OIDC Core §2: at most 255 ASCII characters; some IdPs use
/// longer opaque ids, so a margin).
pub const MAX_SUBJECT_LEN: usize = 1024;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Signed with a key we do not have (yet): refresh the keys and retry once.
    UnknownKey,
    /// Invalid, with the reason (for logs and `WWW-Authenticate`).
    Invalid(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::UnknownKey => f.write_str("signed with an unknown key"),
            TokenError::Invalid(why) => f.write_str(why),
        }
    }
}

pub(super) fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::Invalid(why.into())
}

/// `aud`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    pub(super) fn is_several(&self) -> bool {
        matches!(self, Audience::Many(all) if all.len() > 1)
    }

    /// The audiences besides `us`.
    fn others<'a>(&'a self, us: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let all: &[String] = match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(all) => all,
        };
        all.iter().map(String::as_str).filter(move |a| *a != us)
    }

    /// Whether it names any of `wanted`.
    pub fn any_of(&self, wanted: &[String]) -> bool {
        match self {
            Audience::One(a) => wanted.contains(a),
            Audience::Many(all) => all.iter().any(|a| wanted.contains(a)),
        }
    }
}

/// The claims of an ID token (OIDC Core §2) the filter checks or keeps.
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience(s).
    pub aud: Audience,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// The nonce of the authentication request.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Authorized party.
    #[serde(default)]
    pub azp: Option<String>,
    /// Access-token hash.
    #[serde(default)]
    pub at_hash: Option<String>,
    /// Session id at the IdP (back-channel logout).
    #[serde(default)]
    pub sid: Option<String>,
}

/// An ID token that passed every check of OIDC Core §3.1.3.7 (or §12.2 after a refresh).
#[derive(Debug)]
pub struct VerifiedIdToken {
    raw: String,
    claims: IdTokenClaims,
    payload: Map<String, Value>,
}

impl VerifiedIdToken {
    /// The token as received (kept for `id_token_hint`).
    pub fn raw(&self) -> &str {
        &self.raw
    }
    /// The typed claims.
    pub fn claims(&self) -> &IdTokenClaims {
        &self.claims
    }
    /// Every claim, for claim mapping (groups, email...).
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }
}

/// A verified token's claims: typed, and all of them.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    /// The typed claims.
    pub claims: T,
    /// Every claim.
    pub payload: Map<String, Value>,
}

/// What an ID token must be beyond the common checks.
pub struct IdTokenCheck<'a> {
    /// The nonce of our authentication request (login); `None` after a refresh (OIDC Core
    /// §12.2: a refreshed ID token need not carry one).
    pub nonce: Option<&'a str>,
    /// The access token of the same response, for `at_hash`.
    pub access_token: &'a str,
    /// The session's subject, which a refreshed ID token must keep (§12.2).
    pub subject: Option<&'a str>,
}

/// A subject we can put in a header and a log line: not empty, bounded, no control
/// characters (a hostile IdP must not forge log lines or headers through it).
pub fn valid_subject(sub: &str) -> bool {
    !sub.is_empty() && sub.len() <= MAX_SUBJECT_LEN && !sub.chars().any(char::is_control)
}

/// The media type a JWT's `typ` header names, lower case, `application/` dropped (RFC
/// 7515 §4.1.9).
pub(super) fn typ(header: &Header) -> Option<String> {
    header.typ.as_deref().map(|t| {
        let t = t.to_ascii_lowercase();
        t.strip_prefix("application/").map(str::to_owned).unwrap_or(t)
    })
}

/// Verifies the IdP's tokens with its current keys and this client's settings.
pub struct Verifier<'a> {
    provider: &'a Provider,
    pub(super) settings: &'a ProviderSettings,
}

impl<'a> Verifier<'a> {
    /// A verifier over one provider snapshot.
    pub fn new(provider: &'a Provider, settings: &'a ProviderSettings) -> Self {
        Self { provider, settings }
    }

    pub(super) fn skew(&self) -> u64 {
        self.settings.clock_skew.as_secs()
    }

    /// Signature with an allow-listed algorithm and a key of the IdP, `iss` exact, `aud`,
    /// and the time claims (`exp`, `nbf`, and `iat` not in the future).
    pub(super) fn signed(
        &self,
        token: &str,
        audiences: &[String],
        required: &[&str],
    ) -> Result<(Header, Map<String, Value>), TokenError> {
        let header = decode_header(token).map_err(|e| invalid(format!("malformed: {e}")))?;
        // OIDC Core 3.1.3.7 step 6-7: the algorithm comes from our allow-list, never from
        // the token alone.
        if !ALLOWED_ALGS.contains(&header.alg) {
            return Err(invalid(format!("algorithm {:?} not allowed", header.alg)));
        }
        let jwks = &self.provider.jwks;
        let jwk = match &header.kid {
            Some(kid) => jwks.find(kid),
            None if jwks.keys.len() == 1 => jwks.keys.first(),
            None => None,
        };
        let jwk = jwk.ok_or(TokenError::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("unusable key: {e}")))?;
        let mut v = Validation::new(header.alg);
        // Step 2: `iss` exactly (one of the allowed tenants' for a multi-tenant issuer);
        // step 3: `aud` contains us; step 9: `exp`.
        v.set_issuer(&self.provider.issuers);
        v.set_audience(audiences);
        v.leeway = self.skew();
        v.validate_nbf = true;
        v.set_required_spec_claims(required);
        let data = decode::<Map<String, Value>>(token, &key, &v).map_err(|e| invalid(e.to_string()))?;
        // Entra ID multi-tenant: the `tid` claim is the tenant the `iss` names.
        if let Some(template) = &self.provider.tenant_issuer {
            let tid = data.claims.get("tid").and_then(Value::as_str).unwrap_or_default();
            let iss = data.claims.get("iss").and_then(Value::as_str).unwrap_or_default();
            if tid.is_empty() || template.replace("{tenantid}", tid) != iss {
                return Err(invalid("tid does not match the issuer's tenant"));
            }
        }
        // Step 10: `iat` — a token from the future is refused (jsonwebtoken leaves it).
        if let Some(iat) = data.claims.get("iat") {
            let iat = iat.as_u64().ok_or_else(|| invalid("iat is not a number"))?;
            if iat > now() + self.skew() {
                return Err(invalid("issued in the future"));
            }
        }
        Ok((header, data.claims))
    }

    /// OIDC Core §3.1.3.7 (login) or §12.2 (refresh), and §3.1.3.8 for `at_hash`.
    pub fn id_token(&self, raw: &str, check: IdTokenCheck<'_>) -> Result<VerifiedIdToken, TokenError> {
        let client_id = &self.settings.client_id;
        let (header, payload) = self.signed(
            raw,
            std::slice::from_ref(client_id),
            &["iss", "sub", "aud", "exp", "iat"],
        )?;
        // Another kind of token of the same IdP is not an ID token.
        if matches!(typ(&header).as_deref(), Some("at+jwt" | "logout+jwt")) || payload.contains_key("events") {
            return Err(invalid("not an ID token"));
        }
        let claims: IdTokenClaims = typed(&payload)?;
        if !valid_subject(&claims.sub) {
            return Err(invalid("sub is empty, too long or has control characters"));
        }
        // Steps 4-5: with several audiences, `azp` names us; when present it is us.
        if claims.aud.is_several() && claims.azp.is_none() {
            return Err(invalid("several audiences and no azp"));
        }
        if claims.azp.as_deref().is_some_and(|azp| azp != client_id) {
            return Err(invalid("azp is another client"));
        }
        // Step 3: audiences besides us only when trusted (`trusted_audiences`).
        if let Some(other) = claims
            .aud
            .others(client_id)
            .find(|a| !self.settings.trusted_audiences.iter().any(|t| t == a))
        {
            return Err(invalid(format!("audience {other:?} is not trusted")));
        }
        // Step 11: the nonce we sent, compared in constant time.
        if let Some(nonce) = check.nonce {
            let same_nonce = claims
                .nonce
                .as_deref()
                .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
            if !same_nonce {
                return Err(invalid("nonce does not match"));
            }
        }
        // §12.2: a refreshed ID token is about the same user.
        if check.subject.is_some_and(|sub| sub != claims.sub) {
            return Err(invalid("sub differs from the session's"));
        }
        // §3.1.3.8: at_hash, when present, binds the access token to this ID token.
        if let Some(expected) = &claims.at_hash {
            if !bool::from(
                token_hash(header.alg, check.access_token)
                    .as_bytes()
                    .ct_eq(expected.as_bytes()),
            ) {
                return Err(invalid("at_hash does not match the access token"));
            }
        }
        Ok(VerifiedIdToken {
            raw: raw.to_owned(),
            claims,
            payload,
        })
    }

    /// OIDC Core §5.3.2: a signed userinfo answer, by our IdP (`iss` exact), for us
    /// (`aud`); its claims.
    pub fn userinfo(&self, jwt: &str) -> Result<Map<String, Value>, TokenError> {
        let client_id = &self.settings.client_id;
        let (_, payload) = self.signed(jwt, std::slice::from_ref(client_id), &["iss", "aud", "sub"])?;
        Ok(payload)
    }
}

/// The `iss` values accepted for our issuer: exactly it, and for Google also the bare
/// `accounts.google.com` its ID tokens may carry (Google's OpenID Connect documentation);
/// for no other issuer.
pub(crate) fn accepted_issuers(issuer: &str) -> Vec<&str> {
    const GOOGLE: &str = "https://accounts.google.com";
    if issuer == GOOGLE {
        vec![GOOGLE, "accounts.google.com"]
    } else {
        vec![issuer]
    }
}

/// Now, on the clock `jsonwebtoken` checks `exp` and `nbf` against.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub(super) fn typed<T: for<'de> Deserialize<'de>>(payload: &Map<String, Value>) -> Result<T, TokenError> {
    T::deserialize(&Value::Object(payload.clone())).map_err(|e| invalid(format!("claims: {e}")))
}

/// The left half of the token's hash with the signature's hash function, base64url
/// (OIDC Core §3.1.3.8 `at_hash`; EdDSA over Ed25519 uses SHA-512).
fn token_hash(alg: Algorithm, token: &str) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => Sha384::digest(token).to_vec(),
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => Sha512::digest(token).to_vec(),
        _ => Sha256::digest(token).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_of_the_spec_example() {
        // OIDC Core A.3's access token and at_hash (RS256).
        assert_eq!(
            token_hash(Algorithm::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn only_google_has_a_second_spelling() {
        assert_eq!(
            accepted_issuers("https://accounts.google.com"),
            ["https://accounts.google.com", "accounts.google.com"]
        );
        assert_eq!(accepted_issuers("https://idp.example"), ["https://idp.example"]);
        assert_eq!(accepted_issuers("accounts.google.com"), ["accounts.google.com"]);
    }

    #[test]
    fn subjects() {
        assert!(valid_subject("248289761001"));
        for bad in ["", "a\nb", "a\u{7f}", &"x".repeat(MAX_SUBJECT_LEN + 1)] {
            assert!(!valid_subject(bad), "{bad:?}");
        }
    }

    #[test]
    fn audiences() {
        let one = Audience::One("a".into());
        let two = Audience::Many(vec!["a".into(), "b".into()]);
        assert!(!one.is_several() && two.is_several());
    }
}
