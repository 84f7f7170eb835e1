//! Our binding of the Envoy 1.40 dynamic-module ABI (`v0.2.0`) for HTTP filters.
//!
//! Layers, bottom up: [`abi`] holds the raw C declarations and is the only place that
//! talks to Envoy; [`EnvoyStream`] and [`ConfigContext`] wrap the pointers Envoy passes to
//! a hook, valid only during that hook; [`HttpStream`], [`HttpFilter`] and
//! [`HttpFilterConfig`] are the safe surface a module programs against (and fakes in
//! tests). The exported hooks run every module call behind a panic barrier.
//!
//! This is the workspace's only crate with `unsafe`; each block states its invariant.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod abi;
mod config;
mod filter;
mod handle;
mod hooks;
mod log;
mod metrics;
mod reply;
mod route;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
mod trace;

pub use config::ConfigContext;
pub use filter::{BodyStatus, HeadersStatus, HttpFilter, HttpFilterConfig};
pub use handle::EnvoyStream;
pub use hooks::{program_init, ModuleDescriptor, NewFilterConfig, NewRouteConfig};
pub use log::{enabled as log_enabled, log, Level};
pub use metrics::{Counter, DefineMetrics, Gauge, Histogram, MetricsError};
pub use reply::{error_body, send_error};
pub use stream::{HeaderKind, HttpStream, Scheduler};
pub use trace::TraceId;

/// Declares the module's entry point: `envoy_dynamic_module_on_program_init`, which
/// registers the factories and returns the ABI version. Use once, in the cdylib crate.
#[macro_export]
macro_rules! declare_module {
    (new_filter_config: $config:expr, new_route_config: $route:expr $(,)?) => {
        /// Envoy's module entry point (called once after `dlopen`).
        #[no_mangle]
        pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const ::std::os::raw::c_char {
            $crate::program_init($crate::ModuleDescriptor {
                new_filter_config: $config,
                new_route_config: $route,
            })
        }
    };
}
