//! OpenID Connect login for web apps behind Envoy, as an Envoy dynamic module.
//!
//! Request paths (see DESIGN.md): the session check on every request is synchronous and
//! does no I/O on a cache hit; a cache miss, the login callback, refresh, sign-out and
//! back-channel logout run on the async core and resume the stream through Envoy's
//! scheduler. Load into Envoy as `lib envoy_oidc.so` (`dynamic_module_config.name:
//! envoy_oidc`); the config reference is in `configs/README.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod authz;
pub mod bearer;
pub mod clock;
pub mod config;
pub mod decide;
pub mod endpoints;
pub mod error;
pub mod failure;
pub mod filter;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod oidc;
pub mod realms;
pub mod session;
pub mod work;

use std::any::Any;
use std::sync::Arc;

use envoy_module::{ConfigContext, HttpFilter, HttpFilterConfig, HttpStream};

use crate::config::RouteSettings;
use crate::filter::OidcFilter;
use crate::realms::Realms;

envoy_module::declare_module!(new_filter_config: new_filter_config, new_route_config: new_route_config);

/// The config Envoy holds: a handle on its IdPs' shared gateways.
struct Factory(Arc<Realms>);

impl HttpFilterConfig for Factory {
    fn new_filter(&self, _stream: &mut dyn HttpStream) -> Box<dyn HttpFilter> {
        Box::new(OidcFilter::new(self.0.clone()))
    }
}

fn new_filter_config(ctx: &mut ConfigContext, _name: &str, json: &[u8]) -> Result<Box<dyn HttpFilterConfig>, String> {
    Ok(Box::new(Factory(Realms::build(ctx, json)?)))
}

fn new_route_config(_name: &str, json: &[u8]) -> Result<Box<dyn Any + Send + Sync>, String> {
    // Shared, so a request takes the route's rules without copying them.
    Ok(Box::new(Arc::new(
        RouteSettings::parse(json).map_err(|e| e.to_string())?,
    )))
}
