//! A loopback upstream answering every request with JSON: method, path, headers.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// A loopback upstream answering every request with JSON: method, path, headers.
pub struct Echo {
    /// The port it listens on.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Echo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let headers: Vec<Value> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
                            .collect();
                        let body = json!({
                            "method": req.method().as_str(),
                            "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
                            "headers": headers,
                        });
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .expect("response"),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Echo { port, task }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the echo upstream saw.
pub struct Seen(
    /// The JSON the echo answered.
    pub Value,
);

impl Seen {
    /// The request path (with query).
    pub fn path(&self) -> &str {
        self.0["path"].as_str().unwrap_or_default()
    }
    /// Every value of a header, in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h[0].as_str() == Some(name))
            .map(|h| h[1].as_str().unwrap_or_default().to_owned())
            .collect()
    }
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }
}
