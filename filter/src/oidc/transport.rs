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

/// The real transport: reqwest with rustls, bounded by the IdP timeout.
pub struct ReqwestTransport {
    client: openidconnect::reqwest::Client,
}

impl ReqwestTransport {
    /// A client that never follows redirects (SSRF, token leakage) and gives up after
    /// `timeout` to connect and to answer.
    pub fn new(timeout: std::time::Duration) -> Result<Self, IdpError> {
        let client = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(IdpError::Client)?;
        Ok(Self { client })
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
