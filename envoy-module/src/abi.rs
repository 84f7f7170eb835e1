//! Raw declarations of the Envoy 1.40 dynamic-module C ABI (`abi.h`, ABI `v0.2.0`).
//!
//! Only the types and callbacks this project uses are declared. Every name matches the
//! C symbol; signatures were taken from Envoy's `abi.h` and are checked against the pinned
//! binary by `test-module/tests/abi_symbols.rs`. C enums are 4-byte integers, so they are
//! declared as `u32` aliases: a value Envoy adds later can never be an invalid Rust enum.

use std::os::raw::{c_char, c_void};

/// ABI version string Envoy 1.40 compares against.
pub const ABI_VERSION: &std::ffi::CStr = c"v0.2.0";

/// Envoy-side filter-config object (`DynamicModuleHttpFilterConfig`).
pub type FilterConfigEnvoyPtr = *mut c_void;
/// Our filter-config object, as handed back to Envoy.
pub type FilterConfigModulePtr = *const c_void;
/// Our per-route config object.
pub type PerRouteConfigModulePtr = *const c_void;
/// Envoy-side per-stream filter object (`DynamicModuleHttpFilter`).
pub type FilterEnvoyPtr = *mut c_void;
/// Our per-stream filter object.
pub type FilterModulePtr = *const c_void;
/// A scheduler Envoy allocated for one stream; the module deletes it.
pub type SchedulerModulePtr = *mut c_void;

/// Bytes owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    /// Start of the bytes; may be null.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub length: usize,
}

/// Bytes owned by the module, valid for the duration of the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    /// Start of the bytes; may be null when `length` is 0.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub length: usize,
}

impl ModuleBuffer {
    /// Borrows a byte slice for one call into Envoy.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }

    /// The null buffer (used by `set_header` to remove a header).
    pub fn null() -> Self {
        Self {
            ptr: std::ptr::null(),
            length: 0,
        }
    }
}

/// A header owned by the module.
#[repr(C)]
pub struct ModuleHttpHeader {
    /// Name bytes.
    pub key_ptr: *const c_char,
    /// Name length.
    pub key_length: usize,
    /// Value bytes.
    pub value_ptr: *const c_char,
    /// Value length.
    pub value_length: usize,
}

/// A header owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    /// Name bytes.
    pub key_ptr: *const c_char,
    /// Name length.
    pub key_length: usize,
    /// Value bytes.
    pub value_ptr: *const c_char,
    /// Value length.
    pub value_length: usize,
}

/// `envoy_dynamic_module_type_http_header_type`.
pub type HeaderType = u32;
/// Request headers.
pub const HEADER_REQUEST: HeaderType = 0;
/// Response headers.
pub const HEADER_RESPONSE: HeaderType = 2;

/// `envoy_dynamic_module_type_http_body_type`.
pub type BodyType = u32;
/// Request body chunk received in this event.
pub const BODY_RECEIVED_REQUEST: BodyType = 0;
/// Request body buffered so far.
pub const BODY_BUFFERED_REQUEST: BodyType = 1;

/// `envoy_dynamic_module_type_log_level`.
pub type LogLevel = u32;

/// `envoy_dynamic_module_type_metadata_source`: the stream's dynamic metadata.
pub const METADATA_SOURCE_DYNAMIC: u32 = 0;

/// `envoy_dynamic_module_type_metrics_result`.
pub type MetricsResult = u32;
/// The metrics call succeeded.
pub const METRICS_SUCCESS: MetricsResult = 0;

/// Return values of the header/body/trailer hooks share these numeric values.
pub type HookStatus = u32;

extern "C" {
    // ---- logging (any thread) ----
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    pub fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    // ---- metrics ----
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_set_gauge(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    // ---- headers ----
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    // ---- local replies and flow control ----
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoyPtr);
    pub fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: FilterEnvoyPtr);

    // ---- body ----
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
        result: *mut EnvoyBuffer,
    ) -> bool;

    // ---- metadata and filter state ----
    pub fn envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
        filter: FilterEnvoyPtr,
        ns: ModuleBuffer,
        key: ModuleBuffer,
        value: ModuleBuffer,
    );
    pub fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter: FilterEnvoyPtr,
        source: u32,
        ns: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;

    // ---- scheduler (commit/delete from any thread) ----
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_new(filter: FilterEnvoyPtr) -> SchedulerModulePtr;
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_commit(scheduler: SchedulerModulePtr, event_id: u64);
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: SchedulerModulePtr);

    // ---- route and worker ----
    pub fn envoy_dynamic_module_callback_get_most_specific_route_config(
        filter: FilterEnvoyPtr,
    ) -> PerRouteConfigModulePtr;
    pub fn envoy_dynamic_module_callback_http_filter_get_worker_index(filter: FilterEnvoyPtr) -> u32;
}
