//! How the filter talks HTTP to the IdP: one trait, so the whole OIDC flow (discovery,
//! keys, code exchange, userinfo, refresh, introspection) runs against a fake IdP in unit
//! tests.

use std::future::Future;
use std::pin::Pin;

use openidconnect::{HttpRequest, HttpResponse};

use crate::error::IdpError;

/// A boxed future of an IdP exchange.
pub type Exchange<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, IdpError>> + Send + 'a>>;

/// Sends one request to the IdP. Implementations never follow redirects.
pub trait IdpTransport: Send + Sync {
    /// One request, one response (any status); transport failures are typed.
    fn send(&self, request: HttpRequest) -> Exchange<'_>;
}

/// What the connection to the IdP trusts and presents.
#[derive(Default)]
pub struct IdpTls {
    /// PEM certificates trusted beside the built-in roots (a private CA, or the system
    /// bundle when `system_roots` is set).
    pub extra_roots: Vec<u8>,
    /// Our certificate and key, PEM, for IdPs that want mutual TLS.
    pub client_identity: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// An HTTP(S) proxy to reach the IdP through (none otherwise, whatever the
    /// environment says: Envoy's environment is not the IdP's network policy).
    pub proxy: Option<url::Url>,
}

/// The real transport: reqwest with rustls, bounded by the IdP timeout.
pub struct ReqwestTransport {
    client: openidconnect::reqwest::Client,
}

impl ReqwestTransport {
    /// A client that never follows redirects (SSRF, token leakage), gives up after
    /// `timeout` to connect and to answer, and trusts and presents what `tls` says.
    pub fn new(timeout: std::time::Duration, tls: &IdpTls) -> Result<Self, IdpError> {
        use openidconnect::reqwest::{Certificate, Identity, Proxy};
        let mut b = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout);
        if !tls.extra_roots.is_empty() {
            for cert in Certificate::from_pem_bundle(&tls.extra_roots).map_err(IdpError::Client)? {
                b = b.add_root_certificate(cert);
            }
        }
        if let Some(identity) = &tls.client_identity {
            b = b.identity(Identity::from_pem(identity).map_err(IdpError::Client)?);
        }
        b = match &tls.proxy {
            Some(url) => b.proxy(Proxy::all(url.as_str()).map_err(IdpError::Client)?),
            None => b.no_proxy(),
        };
        Ok(Self {
            client: b.build().map_err(IdpError::Client)?,
        })
    }
}

impl IdpTransport for ReqwestTransport {
    fn send(&self, request: HttpRequest) -> Exchange<'_> {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = self
                .client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(IdpError::from_reqwest)?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await.map_err(IdpError::from_reqwest)?;
            builder
                .body(body.to_vec())
                .map_err(|e| IdpError::Malformed(e.to_string()))
        })
    }
}

/// A GET for JSON.
pub fn get_json(url: &str, bearer: Option<&str>) -> Result<HttpRequest, IdpError> {
    let mut b = http::Request::builder()
        .method(http::Method::GET)
        .uri(url)
        .header(http::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    b.body(Vec::new()).map_err(|e| IdpError::Malformed(e.to_string()))
}
