//! The filter's own endpoints: the login callback, sign-out (and the signed-out page),
//! and OIDC back-channel logout. Each turns a request into a [`crate::decide::Decision`].

pub mod backchannel;
pub mod callback;
pub mod sign_out;
