//! What the filter does with a session on each request.

pub mod identity;
