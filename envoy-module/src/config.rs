//! What a module sees while Envoy loads one of its filter configs (main thread).

use crate::abi::{self, ModuleBuffer};
use crate::metrics::{Counter, DefineMetrics, Gauge, Histogram, MetricsError};

/// Envoy's filter-config object during the config hook: defines the module's metrics.
pub struct ConfigContext {
    ptr: abi::FilterConfigEnvoyPtr,
}

type DefineFn =
    unsafe extern "C" fn(abi::FilterConfigEnvoyPtr, ModuleBuffer, *mut ModuleBuffer, usize, *mut usize) -> u32;

impl ConfigContext {
    /// Wraps the config pointer of the running config hook; never escapes that hook.
    pub(crate) fn new(ptr: abi::FilterConfigEnvoyPtr) -> Self {
        Self { ptr }
    }

    fn define(&mut self, define: DefineFn, name: &str, labels: &[&str]) -> Result<usize, MetricsError> {
        let mut label_bufs: Vec<ModuleBuffer> = labels.iter().map(|l| ModuleBuffer::from_slice(l.as_bytes())).collect();
        let mut id = 0usize;
        // Safety: `self.ptr` is the config of the running config hook (see `new`); the
        // name and label buffers outlive the call and `id` is a writable local.
        let code = unsafe {
            define(
                self.ptr,
                ModuleBuffer::from_slice(name.as_bytes()),
                label_bufs.as_mut_ptr(),
                label_bufs.len(),
                &mut id,
            )
        };
        if code == abi::METRICS_SUCCESS {
            Ok(id)
        } else {
            Err(MetricsError {
                name: name.to_owned(),
                code,
            })
        }
    }
}

impl DefineMetrics for ConfigContext {
    fn define_counter(&mut self, name: &str, labels: &[&str]) -> Result<Counter, MetricsError> {
        self.define(
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter,
            name,
            labels,
        )
        .map(Counter)
    }

    fn define_gauge(&mut self, name: &str, labels: &[&str]) -> Result<Gauge, MetricsError> {
        self.define(
            abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
            name,
            labels,
        )
        .map(Gauge)
    }

    fn define_histogram(&mut self, name: &str, labels: &[&str]) -> Result<Histogram, MetricsError> {
        self.define(
            abi::envoy_dynamic_module_callback_http_filter_config_define_histogram,
            name,
            labels,
        )
        .map(Histogram)
    }
}
