//! The `envoy_dynamic_module_on_*` symbols Envoy 1.40 resolves, each behind a panic barrier.
//!
//! A panic crossing `extern "C"` would abort Envoy, so every hook body runs in
//! [`barrier`]. On the request path a caught panic fails closed: the stream gets a 500
//! carrying its trace id and the filter is poisoned (no more calls into it but destroy).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::abi::{self, EnvoyBuffer, FilterConfigEnvoyPtr, FilterConfigModulePtr, FilterEnvoyPtr, FilterModulePtr};
use crate::config::ConfigContext;
use crate::filter::{BodyStatus, HeadersStatus, HttpFilter, HttpFilterConfig};
use crate::handle::EnvoyStream;
use crate::log::{log, Level};
use crate::reply::send_error;
use crate::route::RouteConfigBox;

/// Builds a filter config from Envoy's `filter_name` and config bytes; `Err` rejects it.
pub type NewFilterConfig = fn(&mut ConfigContext, &str, &[u8]) -> Result<Box<dyn HttpFilterConfig>, String>;
/// Builds a per-route config from its `filter_name` and config bytes; `Err` rejects it.
pub type NewRouteConfig = fn(&str, &[u8]) -> Result<Box<dyn Any + Send + Sync>, String>;

/// What a module registers with [`crate::declare_module!`].
pub struct ModuleDescriptor {
    /// Filter-config factory.
    pub new_filter_config: NewFilterConfig,
    /// Per-route config factory.
    pub new_route_config: NewRouteConfig,
}

static MODULE: OnceLock<ModuleDescriptor> = OnceLock::new();

/// Called by the `envoy_dynamic_module_on_program_init` that `declare_module!` emits.
#[doc(hidden)]
pub fn program_init(descriptor: ModuleDescriptor) -> *const std::os::raw::c_char {
    let registered = barrier("program_init", || {
        crate::log::init_tracing();
        // Panics are caught at the hooks; report each as one line in Envoy's log (this
        // std is private to the module, so the hook is ours alone).
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            log(Level::Error, &format!("panic{at}: {}", panic_message(info.payload())));
        }));
        MODULE.set(descriptor).is_ok() || MODULE.get().is_some()
    });
    match registered {
        Some(true) => abi::ABI_VERSION.as_ptr(),
        _ => std::ptr::null(),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

/// Runs `f`, turning a panic into `None` and an error log line naming the hook.
fn barrier<R>(hook: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            log(
                Level::Error,
                &format!("panic in hook {hook}: {}", panic_message(payload.as_ref())),
            );
            None
        }
    }
}

fn envoy_str(buf: EnvoyBuffer) -> Vec<u8> {
    if buf.ptr.is_null() {
        return Vec::new();
    }
    // Safety: Envoy passes config buffers valid for the duration of the config hook; they
    // are copied here before the hook returns.
    unsafe { std::slice::from_raw_parts(buf.ptr.cast::<u8>(), buf.length) }.to_vec()
}

/// The allocation behind a filter-config pointer handed to Envoy.
struct ConfigBox(Box<dyn HttpFilterConfig>);

/// The allocation behind a per-stream pointer handed to Envoy. Hooks only ever take a
/// shared reference to it; the filter itself is borrowed mutably through the `RefCell`,
/// so a hook Envoy runs *inside* another (the response-headers hook of a local reply we
/// send from the request path, or from `on_scheduled` after `continue_decoding`) finds
/// it borrowed and is skipped, instead of a second `&mut` to the same filter.
struct FilterBox {
    filter: RefCell<Box<dyn HttpFilter>>,
    poisoned: Cell<bool>,
}

/// Borrows our filter box from the pointer Envoy passes back.
///
/// # Safety
/// `ptr` must be a pointer returned by `envoy_dynamic_module_on_http_filter_new` and not
/// yet destroyed; Envoy calls the hooks of one stream on one thread (nested calls are
/// possible, hence the shared reference and the `RefCell`).
unsafe fn filter_box<'a>(ptr: FilterModulePtr) -> &'a FilterBox {
    // Safety: guaranteed by the caller.
    unsafe { &*(ptr as *const FilterBox) }
}

/// Runs `f` on the stream's filter unless it is poisoned or already in a hook of this
/// stream (a nested call: skipped, with `skipped` as the status); a panic poisons it.
fn with_filter<R>(
    hook: &str,
    module: FilterModulePtr,
    skipped: R,
    f: impl FnOnce(&mut dyn HttpFilter) -> R,
) -> Result<R, Poisoned<R>> {
    // Safety: Envoy passes the pointer our `filter_new` returned, alive until destroy.
    let fb = unsafe { filter_box(module) };
    if fb.poisoned.get() {
        return Ok(skipped);
    }
    let Ok(mut filter) = fb.filter.try_borrow_mut() else {
        log(
            Level::Debug,
            &format!("hook {hook} ran inside another hook of its stream: skipped"),
        );
        return Ok(skipped);
    };
    match barrier(hook, || f(filter.as_mut())) {
        Some(r) => Ok(r),
        None => {
            fb.poisoned.set(true);
            Err(Poisoned(skipped))
        }
    }
}

/// The filter panicked in this hook; carries the status to return.
struct Poisoned<R>(R);

/// Runs a request-path hook of a live filter; a panic becomes a 500 and poisons the filter.
fn request_path(
    hook: &str,
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    f: impl FnOnce(&mut dyn HttpFilter, &mut EnvoyStream) -> abi::HookStatus,
) -> abi::HookStatus {
    let mut stream = EnvoyStream::new(envoy);
    match with_filter(hook, module, 0, |filter| f(filter, &mut stream)) {
        Ok(status) => status,
        Err(Poisoned(_)) => {
            let mut stream = EnvoyStream::new(envoy);
            let _ = barrier("panic reply", || {
                send_error(&mut stream, 500, "Internal Server Error", "module_panic")
            });
            1
        }
    }
}

fn headers_status(s: HeadersStatus) -> abi::HookStatus {
    match s {
        HeadersStatus::Continue => 0,
        HeadersStatus::StopIteration => 1,
    }
}

fn body_status(s: BodyStatus) -> abi::HookStatus {
    match s {
        BodyStatus::Continue => 0,
        BodyStatus::StopIterationAndBuffer => 1,
    }
}

/// Config hook: builds our config or returns null so Envoy rejects the config.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy_config: FilterConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> FilterConfigModulePtr {
    let built = barrier("http_filter_config_new", || {
        let module = MODULE.get().ok_or_else(|| "module not initialised".to_owned())?;
        let name = String::from_utf8_lossy(&envoy_str(name)).into_owned();
        let bytes = envoy_str(config);
        let mut ctx = ConfigContext::new(envoy_config);
        (module.new_filter_config)(&mut ctx, &name, &bytes).map_err(|e| format!("filter {name:?}: {e}"))
    });
    match built {
        Some(Ok(cfg)) => Box::into_raw(Box::new(ConfigBox(cfg))) as FilterConfigModulePtr,
        Some(Err(reason)) => {
            log(Level::Error, &format!("rejecting filter config: {reason}"));
            std::ptr::null()
        }
        None => std::ptr::null(),
    }
}

/// Config teardown (main thread).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: FilterConfigModulePtr) {
    barrier("http_filter_config_destroy", || {
        // Safety: `config` came from `Box::into_raw` in config_new and Envoy destroys it once.
        drop(unsafe { Box::from_raw(config as *mut ConfigBox) });
    });
}

/// Per-route config hook.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> abi::PerRouteConfigModulePtr {
    let built = barrier("http_filter_per_route_config_new", || {
        let module = MODULE.get().ok_or_else(|| "module not initialised".to_owned())?;
        let name = String::from_utf8_lossy(&envoy_str(name)).into_owned();
        (module.new_route_config)(&name, &envoy_str(config)).map_err(|e| format!("per-route {name:?}: {e}"))
    });
    match built {
        Some(Ok(cfg)) => Box::into_raw(Box::new(RouteConfigBox(cfg))) as abi::PerRouteConfigModulePtr,
        Some(Err(reason)) => {
            log(Level::Error, &format!("rejecting per-route config: {reason}"));
            std::ptr::null()
        }
        None => std::ptr::null(),
    }
}

/// Per-route teardown.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(config: abi::PerRouteConfigModulePtr) {
    barrier("http_filter_per_route_config_destroy", || {
        // Safety: `config` came from `Box::into_raw` in per_route_config_new, destroyed once.
        drop(unsafe { Box::from_raw(config as *mut RouteConfigBox) });
    });
}

/// New stream: one filter from the config; null closes the stream.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: FilterConfigModulePtr,
    envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    barrier("http_filter_new", || {
        // Safety: `config` is our live ConfigBox; Envoy keeps it alive while streams use it.
        let cfg = unsafe { &*(config as *const ConfigBox) };
        let mut stream = EnvoyStream::new(envoy);
        let filter = cfg.0.new_filter(&mut stream);
        Box::into_raw(Box::new(FilterBox {
            filter: RefCell::new(filter),
            poisoned: Cell::new(false),
        })) as FilterModulePtr
    })
    .unwrap_or(std::ptr::null())
}

/// Stream teardown (also on client disconnect): the filter's last call.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: FilterModulePtr) {
    barrier("http_filter_destroy", || {
        // Safety: our live pointer from filter_new.
        if unsafe { filter_box(module) }.filter.try_borrow_mut().is_err() {
            // Destroyed from inside one of its own hooks: leak rather than free the box
            // under a live reference.
            log(Level::Error, "stream destroyed inside one of its hooks: filter leaked");
            return;
        }
        // Safety: our pointer from filter_new, not borrowed (checked above); Envoy
        // destroys each stream once, last.
        let fb = unsafe { Box::from_raw(module as *mut FilterBox) };
        fb.filter.into_inner().on_destroy();
    });
}

/// Request headers.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> abi::HookStatus {
    request_path("http_filter_request_headers", envoy, module, |f, s| {
        headers_status(f.on_request_headers(s, end_of_stream))
    })
}

/// Request body chunk.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> abi::HookStatus {
    request_path("http_filter_request_body", envoy, module, |f, s| {
        body_status(f.on_request_body(s, end_of_stream))
    })
}

/// Request trailers: passed through.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
) -> abi::HookStatus {
    0
}

/// Response headers. A panic here cannot become a reply any more; it only poisons.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> abi::HookStatus {
    let mut stream = EnvoyStream::new(envoy);
    with_filter("http_filter_response_headers", module, 0, |f| {
        headers_status(f.on_response_headers(&mut stream, end_of_stream))
    })
    .unwrap_or_else(|Poisoned(status)| status)
}

/// Response body: passed through.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _end_of_stream: bool,
) -> abi::HookStatus {
    0
}

/// Response trailers: passed through.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
) -> abi::HookStatus {
    0
}

/// Stream complete (before access logs).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(envoy: FilterEnvoyPtr, module: FilterModulePtr) {
    let mut stream = EnvoyStream::new(envoy);
    let _ = with_filter("http_filter_stream_complete", module, (), |f| {
        f.on_stream_complete(&mut stream)
    });
}

/// A scheduler commit reached the worker: async results are applied here.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    event_id: u64,
) {
    request_path("http_filter_scheduled", envoy, module, |f, s| {
        f.on_scheduled(s, event_id);
        0
    });
}

/// Envoy-side HTTP callouts are not used (I/O runs on our async core instead).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _callout_id: u64,
    _result: u32,
    _headers: *mut abi::EnvoyHttpHeader,
    _headers_size: usize,
    _body: *mut EnvoyBuffer,
    _body_size: usize,
) {
}

/// Streamed callouts are not used.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _headers: *mut abi::EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

/// Streamed callouts are not used.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

/// Streamed callouts are not used.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _trailers: *mut abi::EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

/// Streamed callouts are not used.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
) {
}

/// Streamed callouts are not used.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}

/// Only matters for terminal filters; ours is not one.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
) {
}

/// Only matters for terminal filters; ours is not one.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: FilterEnvoyPtr,
    _module: FilterModulePtr,
) {
}
