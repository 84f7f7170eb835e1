//! The one tokio runtime of the loaded module, created on first use.

use std::sync::OnceLock;

/// Worker threads of the shared runtime: I/O-bound work (IdP, Redis) needs few.
const RUNTIME_THREADS: usize = 2;

/// Why a task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AsyncError {
    /// The in-flight bound is reached: refuse fast rather than queue.
    #[error("too many requests in flight (limit {limit})")]
    Overloaded {
        /// The configured bound.
        limit: usize,
    },
    /// The runtime could not be created (threads refused by the OS).
    #[error("async runtime unavailable: {0}")]
    Runtime(String),
}

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The module's runtime, built lazily and never dropped: the module is loaded with
/// `do_not_close`, so its threads live as long as the Envoy process.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, AsyncError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_THREADS)
                .thread_name("oidc-async")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| AsyncError::Runtime(e.clone()))
}
