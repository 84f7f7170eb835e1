//! The one tokio runtime of the loaded module, created on first use.

use std::sync::OnceLock;

/// How the module's runtime is built. It is shared by every filter config of the
/// process, so the first config to ask decides; a later one asking otherwise is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Worker threads: I/O-bound work (IdP, Redis) needs few.
    pub threads: usize,
    /// Nice value of those threads (0: as Envoy's workers; 19: lowest). Signed-in requests
    /// are served on Envoy's workers; when both want a core, they should win it.
    pub nice: i32,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self { threads: 2, nice: 10 }
    }
}

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

static SETTINGS: OnceLock<RuntimeSettings> = OnceLock::new();
static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Asks for the runtime to be built with `wanted`; returns the settings in force (the
/// first caller's, or the defaults if the runtime was started before anyone asked).
pub fn configure(wanted: RuntimeSettings) -> RuntimeSettings {
    let used = *SETTINGS.get_or_init(|| wanted);
    if used != wanted {
        tracing::warn!(
            ?wanted,
            ?used,
            "the async runtime is shared by the process: keeping the first settings"
        );
    }
    used
}

/// The module's runtime, built lazily and never dropped: the module is loaded with
/// `do_not_close`, so its threads live as long as the Envoy process.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, AsyncError> {
    RUNTIME
        .get_or_init(|| {
            let settings = *SETTINGS.get_or_init(RuntimeSettings::default);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(settings.threads.max(1))
                .thread_name("oidc-async")
                .on_thread_start(move || lower_priority(settings.nice))
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| AsyncError::Runtime(e.clone()))
}

/// Gives the calling thread (not the process: Linux keeps a nice value per thread) the
/// nice value `nice`. Raising it needs no privilege; a refusal is logged, not fatal.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!(nice, error = %e, "could not lower the async runtime's priority");
    }
}
