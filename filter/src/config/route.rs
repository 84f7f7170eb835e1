//! Per-route config (`typed_per_filter_config`): a route without authentication, a group
//! rule, authorization-request parameters for logins that start on the route, and which
//! of several IdPs the route uses.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::fields::authorize_params;
use super::{err, ConfigError};

/// Per-route config: `{"disabled": true}`, `{"require_groups": ["admins"]}`,
/// `{"authorize_params": {"acr_values": "mfa"}}`, `{"idp": "partners"}`.
#[derive(Debug, Clone, Default)]
pub struct RouteSettings {
    /// No authentication on this route.
    pub disabled: bool,
    /// Authenticated users must be in one of these groups.
    pub require_groups: Vec<String>,
    /// Authorization-request parameters of a login started here (over the filter's own
    /// `extra_authorize_params`): `acr_values`, `max_age`, `prompt`...
    pub authorize_params: Vec<(String, String)>,
    /// The IdP of this route (a name from the filter's `idps`, or `default`); `None`: the
    /// host's, else the default.
    pub idp: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRoute {
    disabled: bool,
    require_groups: Vec<String>,
    authorize_params: BTreeMap<String, String>,
    idp: Option<String>,
}

impl RouteSettings {
    /// The rules of a route without per-route config (authenticate, no group rule),
    /// shared: no allocation per request.
    pub fn none() -> std::sync::Arc<Self> {
        static NONE: std::sync::LazyLock<std::sync::Arc<RouteSettings>> = std::sync::LazyLock::new(Default::default);
        NONE.clone()
    }

    /// Parses the per-route JSON.
    pub fn parse(json: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawRoute = serde_json::from_slice(json).map_err(|e| err("per_route", e.to_string()))?;
        Ok(RouteSettings {
            disabled: raw.disabled,
            require_groups: raw.require_groups,
            idp: raw.idp,
            authorize_params: authorize_params(raw.authorize_params).map_err(|e| {
                err(
                    e.field
                        .replacen("extra_authorize_params", "per_route.authorize_params", 1),
                    e.reason,
                )
            })?,
        })
    }
}
