//! Logging through Envoy's logger (`[dynamic_modules]` id), directly or via `tracing`.
//!
//! `tracing` events are formatted with their span fields (such as a request's
//! `trace_id`) and written to Envoy's log; level filtering follows Envoy's own level.

use std::io;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::abi;

/// Envoy's log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

impl Level {
    fn abi(self) -> abi::LogLevel {
        match self {
            Level::Trace => 0,
            Level::Debug => 1,
            Level::Info => 2,
            Level::Warn => 3,
            Level::Error => 4,
        }
    }

    fn from_tracing(level: &tracing::Level) -> Self {
        match *level {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        }
    }
}

/// Whether Envoy currently logs `level` for dynamic modules.
pub fn enabled(level: Level) -> bool {
    // Safety: a pure query, callable from any thread.
    unsafe { abi::envoy_dynamic_module_callback_log_enabled(level.abi()) }
}

/// Writes one line to Envoy's log. Callable from any thread.
pub fn log(level: Level, message: &str) {
    // Safety: Envoy copies the message during the call; logging is thread-safe.
    unsafe { abi::envoy_dynamic_module_callback_log(level.abi(), abi::ModuleBuffer::from_slice(message.as_bytes())) }
}

/// Buffers one formatted event and hands it to Envoy when dropped.
struct EventWriter {
    level: Level,
    buf: Vec<u8>,
}

impl io::Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let line = text.trim_end_matches('\n');
        if !line.is_empty() {
            log(self.level, line);
        }
    }
}

struct EnvoyLog;

impl<'a> MakeWriter<'a> for EnvoyLog {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            level: Level::Info,
            buf: Vec::new(),
        }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> EventWriter {
        EventWriter {
            level: Level::from_tracing(meta.level()),
            buf: Vec::new(),
        }
    }
}

/// Routes `tracing` events to Envoy's log; called once when the module loads.
pub(crate) fn init_tracing() {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(EnvoyLog)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            enabled(Level::from_tracing(meta.level()))
        }));
    // A second module instance in the same process may have installed one already.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
