//! The shared async-filter core.
//!
//! A filter hook hands [`AsyncCore::spawn`] a future and returns `StopIteration`. The
//! future runs on one tokio runtime shared by every Envoy worker, under a panic barrier,
//! a deadline and a tracing span carrying the request's trace id. Its result (or the
//! [`TaskFailure`] that replaced it) is parked in a slot shared with the filter and the
//! stream is woken through Envoy's scheduler; [`Pending::take`], called from
//! `on_scheduled` on the worker, hands it back, and the filter decides the reply: this
//! crate maps nothing to HTTP. [`Outcome::apply`] applies header edits or a local reply.
//! Dropping the [`Pending`] (stream destroyed, client gone) cancels the task under the
//! same lock the task commits under, so nothing ever reaches a destroyed filter. A bound
//! on in-flight tasks refuses work at once ([`AsyncError::Overloaded`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod core;
mod outcome;
mod runtime;

pub use crate::core::{AsyncCore, Completed, Limits, Pending, TaskFailure, COMPLETION_EVENT, PACE, WORKER_COMPLETIONS};
pub use crate::outcome::{HeaderEdit, LocalReply, Outcome};
pub use crate::runtime::RuntimeSettings;
pub use crate::runtime::{configure as configure_runtime, runtime, AsyncError};
