//! Single fields and the sections made of them: header names and the identity-header
//! section, paths, files (bounded reads), error-page templates, authorize parameters.

use std::collections::BTreeMap;
use std::io::Read;

use super::raw::{RawErrorPages, RawHeaders, RawTemplate};
use super::types::{ErrorPages, HeaderSettings, TemplateField, TemplatePiece, Templates};
use super::{err, ConfigError};

/// Largest file the config reads (secrets, CA bundles, templates): a path to a device
/// or a huge file must fail the load, not hang or exhaust Envoy's memory.
pub(super) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads at most [`MAX_FILE_BYTES`] of a file; larger files are an error.
pub(super) fn read_bounded(path: &str) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let mut out = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot read {path:?}: {e}"))?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{path:?} is larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(out)
}

impl TryFrom<RawHeaders> for HeaderSettings {
    type Error = ConfigError;

    fn try_from(h: RawHeaders) -> Result<Self, ConfigError> {
        let mut claims = Vec::with_capacity(h.claims.len());
        for (claim, header) in h.claims {
            claims.push((claim.clone(), header_name(&format!("headers.claims.{claim}"), &header)?));
        }
        let mut settings = HeaderSettings {
            first_bytes: [false; 256],
            user: header_name("headers.user", &h.user)?,
            email: header_name("headers.email", &h.email)?,
            groups: header_name("headers.groups", &h.groups)?,
            preferred_username: header_name("headers.preferred_username", &h.preferred_username)?,
            claims,
            access_token: h.access_token,
            strip_incoming: h
                .strip_incoming
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let field = format!("headers.strip_incoming[{i}]");
                    let bare = name.strip_suffix('*').unwrap_or(name);
                    header_name(&field, bare).map(|_| name.clone())
                })
                .collect::<Result<_, _>>()?,
            client_authorization: h.client_authorization,
            max_bytes: h.max_bytes.max(1024),
            unverified_email: h.unverified_email,
            user_claim: h.user_claim,
        };
        settings.index_first_bytes();
        Ok(settings)
    }
}

impl TryFrom<RawErrorPages> for ErrorPages {
    type Error = ConfigError;

    fn try_from(p: RawErrorPages) -> Result<Self, ConfigError> {
        let defaults = ErrorPages::default();
        Ok(ErrorPages {
            html: template("error_pages.html", p.html)?.unwrap_or(defaults.html),
            json: template("error_pages.json", p.json)?.unwrap_or(defaults.json),
        })
    }
}

fn template(field: &str, raw: Option<RawTemplate>) -> Result<Option<Templates>, ConfigError> {
    let text = match raw {
        None => return Ok(None),
        Some(RawTemplate::Inline(t)) => t,
        Some(RawTemplate::File(p)) => {
            let bytes = read_bounded(&p).map_err(|e| err(field, e))?;
            String::from_utf8(bytes).map_err(|_| err(field, format!("{p:?} is not UTF-8")))?
        }
    };
    let parsed = Templates::parse(&text);
    // A user who reports a problem needs the id that finds its log line.
    if !parsed.pieces().contains(&TemplatePiece::Field(TemplateField::TraceId)) {
        return Err(err(field, "must contain {{trace_id}}"));
    }
    Ok(Some(parsed))
}

pub(super) fn header_name(field: &str, v: &str) -> Result<String, ConfigError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(err(field, format!("{v:?} is not a lower-case header name")))
    }
}

/// Parameters the filter sets itself; letting config override them would undo PKCE,
/// state or nonce.
const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "request",
    "request_uri",
];

pub(super) fn authorize_params(raw: BTreeMap<String, String>) -> Result<Vec<(String, String)>, ConfigError> {
    raw.into_iter()
        .map(|(k, v)| {
            let field = format!("extra_authorize_params.{k}");
            if k.is_empty() || RESERVED_AUTHORIZE_PARAMS.contains(&k.as_str()) {
                return Err(err(field, "is set by the filter itself (use `scopes` for scope)"));
            }
            Ok((k, v))
        })
        .collect()
}

pub(super) fn abs_path(field: &str, v: &str) -> Result<String, ConfigError> {
    if v.starts_with('/') && !v.starts_with("//") && !v.contains('?') {
        Ok(v.to_owned())
    } else {
        Err(err(field, format!("{v:?} must be an absolute path without a query")))
    }
}

pub(super) fn read_file(field: &str, path: &Option<String>) -> Result<Option<Vec<u8>>, ConfigError> {
    path.as_ref()
        .map(|p| read_bounded(p).map_err(|e| err(field, e)))
        .transpose()
}

/// Names of request query parameters passed on to the authorization request: never one
/// the filter sets itself.
pub(super) fn passthrough(names: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() || RESERVED_AUTHORIZE_PARAMS.contains(&n.as_str()) {
            return Err(err(
                format!("authorize_passthrough[{i}]"),
                "is set by the filter itself",
            ));
        }
    }
    Ok(names)
}
