//! OpenID Connect: provider discovery, login, the code exchange, tokens, refresh.

pub mod access_tokens;
pub mod claims;
pub mod client_auth;
pub mod code;
pub mod introspect;
pub mod login;
pub mod logout_token;
pub mod provider;
pub mod refresh;
pub mod token_endpoint;
pub mod tokens;
pub mod transport;
pub mod userinfo;
