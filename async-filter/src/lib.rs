//! The shared async-filter core.
//!
//! A filter hook hands [`AsyncCore::spawn`] a future and returns `StopIteration`. The
//! future runs on one tokio runtime shared by every Envoy worker, under a panic barrier
//! (→ 500), a deadline (→ 504) and a tracing span carrying the request's trace id. Its
//! [`Outcome`] is parked in a slot shared with the filter and the stream is woken through
//! Envoy's scheduler; [`Pending::complete`], called from `on_scheduled` on the worker,
//! applies it. Dropping the [`Pending`] (stream destroyed, client gone) cancels the task
//! under the same lock the task commits under, so nothing ever reaches a destroyed filter.
//! A bound on in-flight tasks turns overload into an immediate 503.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod core;
mod outcome;
mod runtime;

pub use crate::core::{AsyncCore, Completed, Limits, Pending, COMPLETION_EVENT};
pub use crate::outcome::{HeaderEdit, LocalReply, Outcome};
pub use crate::runtime::{runtime, AsyncError};
