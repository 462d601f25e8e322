//! The `http` workload: GET, POST or any method with headers and a body, over
//! keep-alive HTTP/1.1 connections (one per worker, no pool in the way), built for
//! throughput: the request's bytes are built once and each answer's head is parsed in
//! place ([`h1`]). The module also holds what the other HTTP-based drivers share: URL
//! parsing and hyper connections ([`open_http1`], [`json_request`], [`get_json`]).
//!
//! Parameters (`-p key=value` with `orchestrator bench`, `parameters:` in a recipe):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `method` | HTTP method | `GET` |
//! | `path` | path and query (overrides the URL's) | the URL's, else `/` |
//! | `body` | request body | none |
//! | `headers` | object of header → value | none |
//! | `timeout_s` | a request slower than this fails as `timeout` | 30 |
//!
//! A status outside 200–399 counts as a failure of kind `http_<status>`; an answer that
//! is not HTTP/1.x as `http_protocol`; a connection closed mid-answer as
//! `connection_closed`. A server that answers `Connection: close` gets a new connection
//! for the next request. A request that finds its idle connection closed by the server
//! (not one byte of the answer read) is sent once more on a new connection when its
//! method is idempotent (what browsers and curl do), so an idle timeout on the server
//! is not counted as a failure.

pub mod h1;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use h1::H1Connection;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use orchestrator_core::workload::{
    Connection, Outcome, Workload, parse_parameters, timeout_parameter,
};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The `http` workload driver.
#[derive(Debug, Clone, Copy)]
pub struct HttpDriver;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    timeout_s: Option<f64>,
}

/// A parsed `http://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address.
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query (`/` when absent).
    pub path: String,
}

impl Url {
    /// Parses an `http://` URL; `https` is refused (no TLS in the load path).
    ///
    /// # Errors
    /// Not an `http://HOST[:PORT][/PATH]` URL.
    pub fn parse(url: &str) -> Result<Self, DriverError> {
        let bad = || {
            DriverError::new(
                format!("`{url}` is not an http://HOST[:PORT][/PATH] URL"),
                "the http workload speaks plain HTTP/1.1; put TLS in front of the benchmark, not in it",
            )
        };
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], &rest[i..]),
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path,
        })
    }
}

/// Connects to `url`'s host and port, with `TCP_NODELAY`.
///
/// # Errors
/// Connecting failed or took longer than `timeout`; the message names the address.
pub async fn tcp_connect(url: &Url, timeout: Duration) -> Result<tokio::net::TcpStream, String> {
    let stream = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((url.host.as_str(), url.port)),
    )
    .await
    .map_err(|_| format!("connecting to {}:{} timed out", url.host, url.port))?
    .map_err(|e| format!("{}:{}: {e}", url.host, url.port))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens one keep-alive HTTP/1.1 connection to `url`'s host and port with hyper (its
/// I/O runs as a task of its own): what the streaming LLM drivers start from.
///
/// # Errors
/// Connecting or the handshake failed or took longer than `timeout`; the message
/// names the address.
pub async fn open_http1<B>(url: &Url, timeout: Duration) -> Result<SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tcp_connect(url, timeout).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {}:{}: {e}", url.host, url.port))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A request with a JSON body (or none) to `path` on `authority` (`host:port`).
#[must_use]
pub fn json_request(
    authority: &str,
    method: Method,
    path: &str,
    body: Bytes,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::ACCEPT,
            "application/json, application/x-ndjson, text/event-stream",
        )
        .body(Full::new(body))
        .expect("a valid request")
}

/// `GET path` and its JSON answer: how LLM drivers ask a server what models it has.
///
/// # Errors
/// The request fails, the status is not 2xx, or the answer is not JSON; the message
/// names the path.
pub async fn get_json(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    path: &str,
) -> Result<Value, String> {
    match exchange_json(sender, authority, Method::GET, path, Bytes::new()).await? {
        (status, Some(value)) if (200..300).contains(&status) => Ok(value),
        (status, _) if (200..300).contains(&status) => Err(format!("GET {path}: not JSON")),
        (status, _) => Err(format!("GET {path} answered {status}")),
    }
}

/// `GET path` and its status and body as text (a Prometheus page).
///
/// # Errors
/// The connection failed (the message names the path).
pub async fn get_text(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let (status, body) = exchange(sender, authority, Method::GET, path, Bytes::new()).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Sends one request with a JSON `body` (empty: none) and reads the whole answer: its
/// status, and its body as JSON when it is JSON.
///
/// # Errors
/// The connection failed (the message names the method and path).
pub async fn exchange_json(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(u16, Option<Value>), String> {
    let (status, body) = exchange(sender, authority, method, path, body).await?;
    Ok((status, serde_json::from_slice(&body).ok()))
}

/// One request and its whole answer: status and body.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    let what = format!("{method} {path}");
    sender.ready().await.map_err(|e| format!("{what}: {e}"))?;
    let answer = sender
        .send_request(json_request(authority, method, path, body))
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let status = answer.status().as_u16();
    let body = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{what}: {e}"))?
        .to_bytes();
    Ok((status, body))
}

struct Shared {
    url: Url,
    /// The whole request, head and body, as it goes on the wire.
    request: Bytes,
    /// A HEAD request: its answers have no body.
    head_request: bool,
    /// Sent once more on a new connection when the idle one was found closed.
    idempotent: bool,
    timeout: Duration,
}

/// The prepared workload.
pub struct HttpWorkload(Arc<Shared>);

impl HttpWorkload {
    /// Checks the parameters and prepares requests to `url`.
    ///
    /// # Errors
    /// An unknown parameter, a bad method, header or URL.
    pub fn new(url: &str, parameters: &Map<String, Value>) -> Result<Self, DriverError> {
        let params: Params =
            parse_parameters("http", "method, path, body, headers, timeout_s", parameters)?;
        let url = Url::parse(url)?;
        let method_text = params
            .method
            .as_deref()
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let method = Method::from_bytes(method_text.as_bytes()).map_err(|_| {
            DriverError::new(
                format!("`{method_text}` is not an HTTP method"),
                "GET, POST, PUT, ...",
            )
        })?;
        let mut headers = Vec::new();
        for (name, value) in &params.headers {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                DriverError::new(
                    format!("`{name}` is not a header name"),
                    "letters, digits and -",
                )
            })?;
            if name == hyper::header::CONTENT_LENGTH || name == hyper::header::TRANSFER_ENCODING {
                return Err(DriverError::new(
                    format!("header `{name}` is set by the driver"),
                    "give the body as `body`; its length is sent with it",
                ));
            }
            let value = HeaderValue::from_str(&value).map_err(|_| {
                DriverError::new(
                    format!("header `{name}` has a value that cannot be sent"),
                    "no control characters",
                )
            })?;
            headers.push((name, value));
        }
        let host = if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        };
        let authority = if url.port == 80 {
            host
        } else {
            format!("{host}:{}", url.port)
        };
        HeaderValue::from_str(&authority).map_err(|_| {
            DriverError::new(
                "the URL's host cannot be sent in a Host header",
                "check the URL",
            )
        })?;
        let timeout = timeout_parameter(params.timeout_s, 30.0)?;
        let path = params.path.unwrap_or_else(|| url.path.clone());
        let not_a_path = |why: String| {
            DriverError::new(
                format!("`path`: `{path}` is not a path: {why}"),
                "give a path and query such as /v1/items?limit=10",
            )
        };
        let uri: hyper::Uri = path.parse().map_err(|e| not_a_path(format!("{e}")))?;
        if uri.scheme().is_some() || !path.starts_with('/') {
            return Err(not_a_path("it must start with /".into()));
        }
        let body = params.body.unwrap_or_default();
        let request = request_bytes(&method, &path, &authority, &headers, body.as_bytes());
        Ok(Self(Arc::new(Shared {
            url,
            request,
            head_request: method == Method::HEAD,
            idempotent: method.is_idempotent(),
            timeout,
        })))
    }
}

/// The bytes of one request: request line, `Host` (unless `headers` has one), the
/// headers, `Content-Length` when there is a body or the method carries one, the body.
fn request_bytes(
    method: &Method,
    path: &str,
    authority: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: &[u8],
) -> Bytes {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\n").as_bytes());
    if !headers.iter().any(|(name, _)| name == hyper::header::HOST) {
        out.extend_from_slice(format!("host: {authority}\r\n").as_bytes());
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || [Method::POST, Method::PUT, Method::PATCH].contains(method) {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Bytes::from(out)
}

#[async_trait]
impl Workload for HttpWorkload {
    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        Ok(Box::new(HttpConnection {
            shared: self.0.clone(),
            conn: H1Connection::new(tcp_connect(&self.0.url, self.0.timeout).await?),
            timeout: orchestrator_core::workload::Timeout::new(self.0.timeout),
        }))
    }
}

struct HttpConnection {
    shared: Arc<Shared>,
    conn: H1Connection,
    /// One timer for all the connection's requests (they are many and short).
    timeout: orchestrator_core::workload::Timeout,
}

/// One request on `conn`; on an idle connection the server had closed, once more on a
/// new one (idempotent methods only).
async fn send(s: &Shared, conn: &mut H1Connection) -> Outcome {
    let mut answer = conn.exchange(&s.request, s.head_request).await;
    if let Err(h1::Failure::Closed { nothing_read: true }) = answer {
        if s.idempotent && conn.answered() > 0 {
            match tcp_connect(&s.url, s.timeout).await {
                Ok(stream) => {
                    *conn = H1Connection::new(stream);
                    answer = conn.exchange(&s.request, s.head_request).await;
                }
                Err(_) => return Outcome::failed("connect"),
            }
        }
    }
    match answer {
        Ok(answer) => Outcome {
            bytes: answer.body_bytes,
            error: (!(200..400).contains(&answer.status))
                .then(|| format!("http_{}", answer.status)),
            reconnect: !answer.keep_alive,
            ..Outcome::default()
        },
        Err(failure) => Outcome::failed(failure.kind()),
    }
}

#[async_trait]
impl Connection for HttpConnection {
    async fn request(&mut self, _n: u64) -> Outcome {
        let Self {
            shared,
            conn,
            timeout,
        } = self;
        timeout.run(send(shared, conn)).await
    }
}

impl WorkloadDriver for HttpDriver {
    fn name(&self) -> &'static str {
        "http"
    }

    fn description(&self) -> &'static str {
        "HTTP/1.1 requests (any method, headers, body) over keep-alive connections"
    }

    fn parameters_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "method": {"type": "string", "description": "HTTP method", "default": "GET"},
                "path": {"type": "string", "description": "path and query; the URL's when absent"},
                "body": {"type": "string", "description": "request body"},
                "headers": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 30}
            }
        })
    }

    fn workload(
        &self,
        url: &str,
        parameters: &Map<String, Value>,
    ) -> Option<Result<Arc<dyn Workload>, DriverError>> {
        Some(HttpWorkload::new(url, parameters).map(|w| Arc::new(w) as Arc<dyn Workload>))
    }
}

inventory::submit! { WorkloadDriverEntry(&HttpDriver) }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults() {
        assert_eq!(
            Url::parse("http://node1:8080/api?x=1").unwrap(),
            Url {
                host: "node1".into(),
                port: 8080,
                path: "/api?x=1".into()
            }
        );
        assert_eq!(Url::parse("http://example").unwrap().port, 80);
        assert_eq!(Url::parse("http://h:1?q").unwrap().path, "/?q");
        assert!(Url::parse("https://h/").is_err());
        assert!(Url::parse("http://h:99999/").is_err());
    }

    #[test]
    fn the_host_header_brackets_an_ipv6_address_and_omits_port_80() {
        let request = |url: &str| {
            let w = HttpWorkload::new(url, &Map::new()).unwrap();
            String::from_utf8(w.0.request.to_vec()).unwrap()
        };
        assert_eq!(
            request("http://[::1]:8080/x"),
            "GET /x HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n"
        );
        assert_eq!(
            request("http://node1/"),
            "GET / HTTP/1.1\r\nhost: node1\r\n\r\n"
        );
    }

    #[test]
    fn unknown_parameters_are_refused_with_the_known_ones() {
        let params = serde_json::json!({"metod": "POST"});
        let error = HttpWorkload::new("http://h/", params.as_object().unwrap())
            .err()
            .unwrap();
        assert!(
            error.message.contains("unknown field `metod`"),
            "{}",
            error.message
        );
        assert!(
            error
                .hint
                .unwrap()
                .contains("method, path, body, headers, timeout_s")
        );
    }
}
