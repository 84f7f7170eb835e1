//! Per-route configuration: what the module's per-route hook builds and streams look up.

use std::any::Any;

/// The allocation behind a per-route pointer handed to Envoy.
pub(crate) struct RouteConfigBox(pub(crate) Box<dyn Any + Send + Sync>);
