//! [`EnvoyStream`]: the [`HttpStream`] of a real Envoy stream, over the raw ABI.

use std::any::Any;

use crate::abi::{self, EnvoyBuffer, ModuleBuffer};
use crate::metrics::{Counter, Gauge, Histogram};
use crate::route::RouteConfigBox;
use crate::stream::{HeaderKind, HttpStream, Scheduler};

/// One stream, valid for the duration of the hook that created it.
pub struct EnvoyStream {
    ptr: abi::FilterEnvoyPtr,
}

impl EnvoyStream {
    /// Wraps the filter pointer Envoy passed to the running hook.
    ///
    /// Only the hooks in this crate create it, with the pointer of the hook they run in,
    /// and never let it escape the hook: that is the invariant every call below relies on.
    pub(crate) fn new(ptr: abi::FilterEnvoyPtr) -> Self {
        Self { ptr }
    }
}

fn header_type(kind: HeaderKind) -> abi::HeaderType {
    match kind {
        HeaderKind::Request => abi::HEADER_REQUEST,
        HeaderKind::Response => abi::HEADER_RESPONSE,
    }
}

/// Turns an Envoy buffer into a slice bound to the borrow of `_owner`.
fn envoy_slice<T: ?Sized>(_owner: &T, buf: EnvoyBuffer) -> Option<&[u8]> {
    if buf.ptr.is_null() {
        return None;
    }
    // Safety: Envoy guarantees the buffer stays valid until the hook returns or a setter
    // runs; the slice borrows `_owner` (the stream) shared, and every setter borrows it
    // mutably, so the slice cannot outlive either event.
    Some(unsafe { std::slice::from_raw_parts(buf.ptr.cast::<u8>(), buf.length) })
}

fn empty_buffer() -> EnvoyBuffer {
    EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    }
}

fn labels_buffers(labels: &[&str]) -> Vec<ModuleBuffer> {
    labels.iter().map(|l| ModuleBuffer::from_slice(l.as_bytes())).collect()
}

impl EnvoyStream {
    fn header_at(&self, kind: HeaderKind, name: &str, index: usize, count: Option<&mut usize>) -> Option<&[u8]> {
        let mut out = empty_buffer();
        let count_ptr = count.map_or(std::ptr::null_mut(), |c| c as *mut usize);
        // Safety: `self.ptr` is the live filter of the running hook (see `new`); `out` and
        // `count_ptr` point to writable locals or are null where the ABI allows null.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_header(
                self.ptr,
                header_type(kind),
                ModuleBuffer::from_slice(name.as_bytes()),
                &mut out,
                index,
                count_ptr,
            )
        };
        if ok {
            envoy_slice(self, out)
        } else {
            None
        }
    }
}

/// `http_set_header` or `http_add_header`: same signature, different semantics.
type HeaderWrite = unsafe extern "C" fn(abi::FilterEnvoyPtr, abi::HeaderType, ModuleBuffer, ModuleBuffer) -> bool;

impl EnvoyStream {
    fn write_header(&mut self, write: HeaderWrite, kind: HeaderKind, name: &str, value: ModuleBuffer) {
        // Safety: live filter pointer of the running hook (see `new`); `name` and the bytes
        // behind `value` outlive the call, and Envoy copies them during it.
        unsafe {
            write(
                self.ptr,
                header_type(kind),
                ModuleBuffer::from_slice(name.as_bytes()),
                value,
            );
        }
    }
}

impl HttpStream for EnvoyStream {
    fn header(&self, kind: HeaderKind, name: &str) -> Option<&[u8]> {
        self.header_at(kind, name, 0, None)
    }

    fn header_values(&self, kind: HeaderKind, name: &str) -> Vec<&[u8]> {
        let mut count = 0usize;
        let Some(first) = self.header_at(kind, name, 0, Some(&mut count)) else {
            return Vec::new();
        };
        let mut values = Vec::with_capacity(count.max(1));
        values.push(first);
        values.extend((1..count).filter_map(|i| self.header_at(kind, name, i, None)));
        values
    }

    fn headers(&self, kind: HeaderKind) -> Vec<(&[u8], &[u8])> {
        // Safety: live filter pointer of the running hook.
        let n = unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(self.ptr, header_type(kind)) };
        if n == 0 {
            return Vec::new();
        }
        let blank = abi::EnvoyHttpHeader {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        };
        let mut raw = vec![blank; n];
        // Safety: `raw` holds exactly the `n` entries Envoy reported for this map, and no
        // setter runs between the size query and this call.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(self.ptr, header_type(kind), raw.as_mut_ptr())
        };
        if !ok {
            return Vec::new();
        }
        raw.into_iter()
            .filter_map(|h| {
                let k = envoy_slice(
                    self,
                    EnvoyBuffer {
                        ptr: h.key_ptr,
                        length: h.key_length,
                    },
                )?;
                let v = envoy_slice(
                    self,
                    EnvoyBuffer {
                        ptr: h.value_ptr,
                        length: h.value_length,
                    },
                )
                .unwrap_or(&[]);
                Some((k, v))
            })
            .collect()
    }

    fn set_header(&mut self, kind: HeaderKind, name: &str, value: &[u8]) {
        self.write_header(
            abi::envoy_dynamic_module_callback_http_set_header,
            kind,
            name,
            ModuleBuffer::from_slice(value),
        );
    }

    fn add_header(&mut self, kind: HeaderKind, name: &str, value: &[u8]) {
        self.write_header(
            abi::envoy_dynamic_module_callback_http_add_header,
            kind,
            name,
            ModuleBuffer::from_slice(value),
        );
    }

    fn remove_header(&mut self, kind: HeaderKind, name: &str) {
        // A null value is the ABI's way to remove every value of a header.
        self.write_header(
            abi::envoy_dynamic_module_callback_http_set_header,
            kind,
            name,
            ModuleBuffer::null(),
        );
    }

    fn request_body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        // A lone chunk may sit only in the received body, so read buffered then received.
        for body_type in [abi::BODY_BUFFERED_REQUEST, abi::BODY_RECEIVED_REQUEST] {
            // Safety: live filter pointer.
            let n = unsafe { abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.ptr, body_type) };
            if n == 0 {
                continue;
            }
            let mut chunks = vec![empty_buffer(); n];
            // Safety: `chunks` has the `n` slots Envoy reported; no setter runs in between.
            let ok = unsafe {
                abi::envoy_dynamic_module_callback_http_get_body_chunks(self.ptr, body_type, chunks.as_mut_ptr())
            };
            if ok {
                for chunk in chunks {
                    body.extend_from_slice(envoy_slice(self, chunk).unwrap_or(&[]));
                }
            }
        }
        body
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &[u8])], body: &[u8], details: &str) {
        let mut raw: Vec<abi::ModuleHttpHeader> = headers
            .iter()
            .map(|(k, v)| abi::ModuleHttpHeader {
                key_ptr: k.as_ptr().cast(),
                key_length: k.len(),
                value_ptr: v.as_ptr().cast(),
                value_length: v.len(),
            })
            .collect();
        // Safety: live filter pointer; `raw` and the slices it points into outlive the
        // call, and Envoy copies them during it.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                u32::from(status),
                raw.as_mut_ptr(),
                raw.len(),
                ModuleBuffer::from_slice(body),
                ModuleBuffer::from_slice(details.as_bytes()),
            );
        }
    }

    fn continue_decoding(&mut self) {
        // Safety: live filter pointer.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_decoding(self.ptr) }
    }

    fn continue_encoding(&mut self) {
        // Safety: live filter pointer.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_encoding(self.ptr) }
    }

    fn set_metadata(&mut self, namespace: &str, key: &str, value: &str) {
        // Safety: live filter pointer; buffers are copied by Envoy.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
                self.ptr,
                ModuleBuffer::from_slice(namespace.as_bytes()),
                ModuleBuffer::from_slice(key.as_bytes()),
                ModuleBuffer::from_slice(value.as_bytes()),
            )
        }
    }

    fn metadata(&self, namespace: &str, key: &str) -> Option<&[u8]> {
        let mut out = empty_buffer();
        // Safety: live filter pointer; `out` is a writable local.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_string(
                self.ptr,
                abi::METADATA_SOURCE_DYNAMIC,
                ModuleBuffer::from_slice(namespace.as_bytes()),
                ModuleBuffer::from_slice(key.as_bytes()),
                &mut out,
            )
        };
        if ok {
            envoy_slice(self, out)
        } else {
            None
        }
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> bool {
        // Safety: live filter pointer; buffers are copied by Envoy.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.ptr,
                ModuleBuffer::from_slice(key.as_bytes()),
                ModuleBuffer::from_slice(value),
            )
        }
    }

    fn filter_state(&self, key: &str) -> Option<&[u8]> {
        let mut out = empty_buffer();
        // Safety: live filter pointer; `out` is a writable local.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_filter_state_bytes(
                self.ptr,
                ModuleBuffer::from_slice(key.as_bytes()),
                &mut out,
            )
        };
        if ok {
            envoy_slice(self, out)
        } else {
            None
        }
    }

    fn route_config(&self) -> Option<&(dyn Any + Send + Sync)> {
        // Safety: live filter pointer.
        let ptr = unsafe { abi::envoy_dynamic_module_callback_get_most_specific_route_config(self.ptr) };
        if ptr.is_null() {
            return None;
        }
        // Safety: Envoy only hands back pointers our per-route hook returned, which are
        // `Box<RouteConfigBox>` kept alive by Envoy's route table for at least the stream.
        let boxed = unsafe { &*ptr.cast::<RouteConfigBox>() };
        Some(boxed.0.as_ref())
    }

    fn worker_index(&self) -> u32 {
        // Safety: live filter pointer.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_get_worker_index(self.ptr) }
    }

    fn new_scheduler(&mut self) -> Box<dyn Scheduler> {
        // Safety: called on the worker thread inside a hook, as the ABI requires.
        let ptr = unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_new(self.ptr) };
        Box::new(EnvoyScheduler { ptr })
    }

    fn increment_counter(&mut self, counter: Counter, labels: &[&str], by: u64) {
        let mut l = labels_buffers(labels);
        // Safety: live filter pointer; the label buffers outlive the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                self.ptr,
                counter.0,
                l.as_mut_ptr(),
                l.len(),
                by,
            );
        }
    }

    fn set_gauge(&mut self, gauge: Gauge, labels: &[&str], value: u64) {
        let mut l = labels_buffers(labels);
        // Safety: live filter pointer; the label buffers outlive the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_set_gauge(self.ptr, gauge.0, l.as_mut_ptr(), l.len(), value);
        }
    }

    fn record_histogram(&mut self, histogram: Histogram, labels: &[&str], value: u64) {
        let mut l = labels_buffers(labels);
        // Safety: live filter pointer; the label buffers outlive the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_record_histogram_value(
                self.ptr,
                histogram.0,
                l.as_mut_ptr(),
                l.len(),
                value,
            );
        }
    }
}

/// Envoy's per-stream scheduler; deleted exactly once, on drop.
struct EnvoyScheduler {
    ptr: abi::SchedulerModulePtr,
}

// Safety: the ABI allows `scheduler_commit` and `scheduler_delete` from any thread, and a
// commit after the stream is gone is dropped by Envoy while the scheduler is not deleted.
unsafe impl Send for EnvoyScheduler {}
// Safety: as above; `commit` takes `&self` and Envoy serialises commits internally.
unsafe impl Sync for EnvoyScheduler {}

impl Scheduler for EnvoyScheduler {
    fn commit(&self, event_id: u64) {
        // Safety: `ptr` came from `scheduler_new` and is deleted only in `drop`.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_commit(self.ptr, event_id) }
    }
}

impl Drop for EnvoyScheduler {
    fn drop(&mut self) {
        // Safety: the only delete of this scheduler; `self` owns it.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(self.ptr) }
    }
}
