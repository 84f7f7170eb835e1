//! The filter config: JSON (or a YAML `google.protobuf.Struct`, which arrives as JSON)
//! from Envoy, parsed once into immutable, grouped [`Settings`]. `raw` holds the shapes
//! as written, `parse` validates them section by section, `types` is what the filter
//! uses. Every error names the field it is about; secrets are read here, once.

mod fields;
mod idp;
mod idps;
mod parse;
mod raw;
mod reload;
mod route;
mod secret;
mod store;
#[cfg(test)]
mod tests;
mod types;

pub use idp::ProviderSettings;
pub use idps::{own_paths, parse_all, IdpConfig, DEFAULT_IDP};
pub use reload::{Renewed, SecretFiles};
pub use route::RouteSettings;
pub use secret::{ClientSecret, Live, SecretSource};
pub use types::{
    AccessLogUser, ApiMatcher, AuthzRules, BearerSettings, ClientAuthorization, CookieSettings, CrossSiteSignOut,
    EncodedSeparators, EndSessionMethod, ErrorPages, HeaderSettings, IntrospectionSettings, PassThrough, Paths,
    RefreshSettings, Rule, SameSite, SessionSettings, Settings, SignOutSettings, StoreSettings, TemplateField,
    TemplatePiece, Templates, Timeouts,
};

/// A config error: which field, and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `session.keys[1]`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}
