//! OpenID Connect: provider discovery, login, callback, tokens, refresh, logout.

pub mod callback;
pub mod claims;
pub mod login;
pub mod logout;
pub mod provider;
pub mod refresh;
pub mod tokens;
