//! The filter's own endpoints: the login callback, sign-out (and the signed-out page),
//! OIDC back-channel logout, and readiness. Each turns a request into a [`crate::decide::Decision`].

pub mod backchannel;
pub mod callback;
pub mod ready;
pub mod sign_out;
