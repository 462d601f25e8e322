//! Health gating: is a service ready to take load?
//!
//! A probe is an HTTP GET (any 2xx or 3xx answer passes), a Redis `PING`, a MySQL
//! login ([`mysql`]), or a plain TCP connect. It goes through [`Shell::connect_tcp`],
//! so over SSH it starts on the login node: the compute nodes need not be reachable
//! from the user's machine.

use std::time::Duration;

use orchestrator_recipes::ServiceRecipe;
use orchestrator_ssh::Shell;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod mysql;
pub use mysql::Secret;

/// Defaults when a service has ports but no `health_check`: a TCP connect every
/// second, for at most two minutes.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RETRIES: u32 = 120;

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProbeKind {
    /// `GET path` answered with 2xx or 3xx (and a body that holds every `expect`).
    Http {
        /// The request path, with its query.
        path: String,
        /// A host other than the service's node, from a full URL.
        host: Option<String>,
        /// Text the answer's body must contain, e.g. a model's name in Ollama's
        /// `/api/tags` once it is pulled.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        expect: Vec<String>,
    },
    /// A TCP connection is accepted (`tcp://HOST:PORT`, or no endpoint).
    Tcp {
        /// A host other than the service's node, from a full URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// A Redis `PING` is answered `+PONG` (`redis://HOST:PORT`), or `-NOAUTH` from a
    /// server that wants a password: it is up and answering.
    Redis {
        /// A host other than the service's node, from a full URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
    /// A MySQL or MariaDB server greets (its version is recorded) and, when `user` is
    /// given, accepts its login (`mysql://HOST:PORT`).
    Mysql {
        /// A host other than the service's node, from a full URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        /// Who logs in; no login without one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// Their password: never serialised or printed.
        #[serde(skip)]
        password: Secret,
    },
}

/// A readiness probe and how often to try it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthProbe {
    /// What to check.
    pub check: ProbeKind,
    /// The port; the service's first port when `None`.
    pub port: Option<u16>,
    /// Time between attempts.
    pub interval: Duration,
    /// Time one attempt may take.
    pub timeout: Duration,
    /// Attempts before giving up.
    pub retries: u32,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// Whether it passed.
    pub healthy: bool,
    /// The status line and the start of the body, or the error.
    pub response: String,
    /// The version the service told in the exchange (a MySQL greeting's), if any.
    pub version: Option<String>,
}

impl HealthProbe {
    /// The probe of a service recipe: its `health_check`; without one, a TCP connect to
    /// its first port; without ports, none.
    #[must_use]
    pub fn for_service(service: &ServiceRecipe) -> Option<Self> {
        match &service.health_check {
            Some(hc) => {
                let (check, url_port) = match hc.endpoint.as_deref() {
                    Some(endpoint) => parse_endpoint(endpoint),
                    None => (ProbeKind::Tcp { host: None }, None),
                };
                Some(Self {
                    check,
                    port: hc.port.or(url_port),
                    interval: hc.interval.to_std(),
                    timeout: hc.timeout.to_std(),
                    retries: hc.retries.max(1),
                })
            }
            None if !service.ports.is_empty() => Some(Self {
                check: ProbeKind::Tcp { host: None },
                port: None,
                interval: DEFAULT_INTERVAL,
                timeout: DEFAULT_TIMEOUT,
                retries: DEFAULT_RETRIES,
            }),
            None => None,
        }
    }

    /// A driver's own `check` at the recipe's timing: with a `health_check` that names no
    /// endpoint, its interval, timeout, retries and port (else `port`); with no
    /// `health_check`, an attempt of at most 5 s every second, `retries` times, at
    /// `port`. `None` when the recipe's `health_check` names an endpoint of its own,
    /// which [`for_service`](Self::for_service) reads.
    #[must_use]
    pub fn own_check(
        service: &ServiceRecipe,
        check: ProbeKind,
        port: u16,
        retries: u32,
    ) -> Option<Self> {
        match &service.health_check {
            Some(hc) if hc.endpoint.is_some() => None,
            Some(hc) => Some(Self {
                check,
                port: Some(hc.port.unwrap_or(port)),
                interval: hc.interval.to_std(),
                timeout: hc.timeout.to_std(),
                retries: hc.retries.max(1),
            }),
            None => Some(Self {
                check,
                port: Some(port),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(5),
                retries,
            }),
        }
    }

    /// The host a probe of a service on `node` goes to.
    #[must_use]
    pub fn host<'a>(&'a self, node: &'a str) -> &'a str {
        match &self.check {
            ProbeKind::Http { host: Some(h), .. }
            | ProbeKind::Tcp { host: Some(h) }
            | ProbeKind::Redis { host: Some(h) }
            | ProbeKind::Mysql { host: Some(h), .. } => h,
            _ => node,
        }
    }

    /// For messages: `GET http://node1:8080/health` or `TCP node1:6379`.
    #[must_use]
    pub fn describe(&self, node: &str, port: u16) -> String {
        let host = self.host(node);
        match &self.check {
            ProbeKind::Http { path, .. } => format!("GET http://{host}:{port}{path}"),
            ProbeKind::Tcp { .. } => format!("TCP {host}:{port}"),
            ProbeKind::Redis { .. } => format!("Redis PING {host}:{port}"),
            ProbeKind::Mysql {
                user: Some(user), ..
            } => {
                format!("MySQL login as {user} to {host}:{port}")
            }
            ProbeKind::Mysql { user: None, .. } => format!("MySQL greeting from {host}:{port}"),
        }
    }

    /// Runs one attempt against the service on `node`, port `port`.
    pub async fn probe(&self, shell: &dyn Shell, node: &str, port: u16) -> ProbeResult {
        let host = self.host(node).to_owned();
        let attempt = async {
            let mut stream = shell
                .connect_tcp(&host, port)
                .await
                .map_err(|e| e.to_string())?;
            match &self.check {
                ProbeKind::Tcp { .. } => Ok::<_, String>(ProbeResult {
                    healthy: true,
                    response: format!("TCP {host}:{port} accepted the connection"),
                    version: None,
                }),
                ProbeKind::Mysql { user, password, .. } => {
                    mysql::login(&mut stream, user.as_deref(), password).await
                }
                ProbeKind::Redis { .. } => {
                    stream
                        .write_all(b"*1\r\n$4\r\nPING\r\n")
                        .await
                        .map_err(|e| format!("sending PING: {e}"))?;
                    let mut answer = Vec::new();
                    let mut chunk = [0u8; 512];
                    while !answer.ends_with(b"\r\n") && answer.len() < 4096 {
                        let n = stream
                            .read(&mut chunk)
                            .await
                            .map_err(|e| format!("reading the answer to PING: {e}"))?;
                        if n == 0 {
                            break;
                        }
                        answer.extend_from_slice(&chunk[..n]);
                    }
                    Ok(redis_verdict(&answer))
                }
                ProbeKind::Http { path, expect, .. } => {
                    send_get(&mut stream, &host, port, path).await?;
                    let mut answer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read until the header is complete and a little body for messages;
                    // the whole answer (up to 1 MiB) when the body is checked.
                    let limit = if expect.is_empty() {
                        16 * 1024
                    } else {
                        1 << 20
                    };
                    while answer.len() < limit {
                        let n = stream
                            .read(&mut chunk)
                            .await
                            .map_err(|e| format!("reading the answer: {e}"))?;
                        if n == 0 {
                            break;
                        }
                        answer.extend_from_slice(&chunk[..n]);
                        if expect.is_empty()
                            && header_end(&answer).is_some_and(|end| answer.len() >= end + 200)
                        {
                            break;
                        }
                    }
                    Ok(http_verdict(&answer, expect))
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => ProbeResult {
                healthy: false,
                response: error,
                version: None,
            },
            Err(_) => ProbeResult {
                healthy: false,
                response: format!("no answer within {} ms", self.timeout.as_millis()),
                version: None,
            },
        }
    }
}

/// Sends `GET path` asking the server to close the connection after its answer.
async fn send_get(
    stream: &mut orchestrator_ssh::BoxedStream,
    host: &str,
    port: u16,
    path: &str,
) -> Result<(), String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: hpc-orchestrator\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))
}

/// `GET path` on `host:port` through `shell`, read to the end (at most 64 KiB): the
/// status code and the body.
///
/// # Errors
/// No connection, no HTTP answer, or no answer within `timeout`.
pub async fn http_get(
    shell: &dyn Shell,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    http_get_limited(shell, host, port, path, timeout, 64 * 1024).await
}

/// [`http_get`] of at most `limit` bytes, a chunked answer decoded.
///
/// # Errors
/// No connection, no HTTP answer, a malformed chunked body, or no answer within
/// `timeout`.
pub async fn http_get_limited(
    shell: &dyn Shell,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
    limit: usize,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = shell
            .connect_tcp(host, port)
            .await
            .map_err(|e| e.to_string())?;
        send_get(&mut stream, host, port, path).await?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        while answer.len() < limit {
            match stream.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("reading the answer: {e}")),
            }
        }
        let end = header_end(&answer).ok_or("not an HTTP answer")?;
        let head = String::from_utf8_lossy(&answer[..end]);
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("not an HTTP answer")?;
        let chunked = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("transfer-encoding")
                    && v.to_ascii_lowercase().contains("chunked")
            })
        });
        let body = &answer[end + 4..];
        let body = if chunked {
            dechunk(body)?
        } else {
            body.to_vec()
        };
        Ok((code, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// `/path` → HTTP on the service's node; `http://host:port/path` → that host (where
/// `localhost` and `127.0.0.1` mean the service's node) and port.
/// The probe an endpoint names: a path (HTTP on the service's port), or a URL:
/// `http(s)://`, `redis://`, `mysql://` or `tcp://` on its host and port, where `localhost` means
/// the service's node.
fn parse_endpoint(endpoint: &str) -> (ProbeKind, Option<u16>) {
    let schemes = ["http://", "https://", "redis://", "mysql://", "tcp://"];
    let Some((scheme, rest)) = schemes
        .iter()
        .find_map(|s| endpoint.strip_prefix(s).map(|rest| (*s, rest)))
    else {
        return (
            ProbeKind::Http {
                path: endpoint.to_owned(),
                host: None,
                expect: Vec::new(),
            },
            None,
        );
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // `redis://:password@host:port` or `user@host`: the host is after the `@`.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().ok()),
        _ => (authority, None),
    };
    let host = match host {
        "localhost" | "127.0.0.1" | "0.0.0.0" | "" => None,
        other => Some(other.to_owned()),
    };
    let kind = match scheme {
        "redis://" => ProbeKind::Redis { host },
        "tcp://" => ProbeKind::Tcp { host },
        "mysql://" => ProbeKind::Mysql {
            host,
            user: None,
            password: Secret::default(),
        },
        _ => ProbeKind::Http {
            path: path.to_owned(),
            host,
            expect: Vec::new(),
        },
    };
    (kind, port)
}

/// A Redis server's answer to `PING`: `+PONG` passes, and so does `-NOAUTH` (up, but it
/// wants a password); `-LOADING` (still reading its data) and anything else do not.
fn redis_verdict(answer: &[u8]) -> ProbeResult {
    let line = String::from_utf8_lossy(answer).trim_end().to_owned();
    let healthy = line == "+PONG" || line.starts_with("-NOAUTH");
    // Redis explains a refusal at length (`-DENIED ... protected mode ...`): the start
    // says what it is.
    let shown: String = line.chars().take(160).collect();
    let more = if shown.len() < line.len() { " …" } else { "" };
    ProbeResult {
        healthy,
        response: if line.is_empty() {
            "the connection closed without an answer to PING".to_owned()
        } else {
            format!("PING answered {shown}{more}")
        },
        version: None,
    }
}

/// A chunked HTTP/1.1 body, decoded (trailers dropped).
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunked answer cut short")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("a chunk size `{size_text}` that is not hexadecimal"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("a chunked answer cut short (more than the limit?)".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn header_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

fn http_verdict(answer: &[u8], expect: &[String]) -> ProbeResult {
    let text = String::from_utf8_lossy(answer);
    let status_line = text.lines().next().unwrap_or("").trim().to_owned();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    let full_body = header_end(answer)
        .map(|end| {
            String::from_utf8_lossy(&answer[end + 4..])
                .trim()
                .to_owned()
        })
        .unwrap_or_default();
    let body: String = full_body.chars().take(200).collect();
    let missing: Vec<&String> = expect
        .iter()
        .filter(|e| !full_body.contains(e.as_str()))
        .collect();
    match code {
        Some(code) if (200..400).contains(&code) && !missing.is_empty() => ProbeResult {
            healthy: false,
            response: format!(
                "{status_line}, but the answer does not contain {}",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            version: None,
        },
        Some(code) => ProbeResult {
            healthy: (200..400).contains(&code),
            response: if body.is_empty() {
                status_line
            } else {
                format!("{status_line}: {body}")
            },
            version: None,
        },
        None if answer.is_empty() => ProbeResult {
            healthy: false,
            response: "the connection closed without an answer".to_owned(),
            version: None,
        },
        None => ProbeResult {
            healthy: false,
            response: format!(
                "not an HTTP answer: {:?}",
                text.chars().take(80).collect::<String>()
            ),
            version: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_decoded_and_a_cut_one_refused() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n").unwrap(),
            b"Wikipedia "
        );
        assert!(dechunk(b"a\r\nshort").is_err());
        assert!(dechunk(b"zz\r\n").is_err());
    }

    #[test]
    fn endpoints_are_paths_or_urls_where_localhost_is_the_node() {
        assert_eq!(
            parse_endpoint("/api/tags"),
            (
                ProbeKind::Http {
                    path: "/api/tags".into(),
                    host: None,
                    expect: Vec::new(),
                },
                None
            )
        );
        assert_eq!(
            parse_endpoint("http://localhost:11434/api/tags"),
            (
                ProbeKind::Http {
                    path: "/api/tags".into(),
                    host: None,
                    expect: Vec::new(),
                },
                Some(11434)
            )
        );
        assert_eq!(
            parse_endpoint("http://db.example:8080"),
            (
                ProbeKind::Http {
                    path: "/".into(),
                    host: Some("db.example".into()),
                    expect: Vec::new(),
                },
                Some(8080)
            )
        );
    }

    #[test]
    fn redis_and_tcp_urls_name_their_probe_host_and_port() {
        assert_eq!(
            parse_endpoint("redis://localhost:6379"),
            (ProbeKind::Redis { host: None }, Some(6379))
        );
        assert_eq!(
            parse_endpoint("redis://:pw@cache.example:6380/0"),
            (
                ProbeKind::Redis {
                    host: Some("cache.example".into())
                },
                Some(6380)
            )
        );
        assert_eq!(
            parse_endpoint("tcp://0.0.0.0:5432"),
            (ProbeKind::Tcp { host: None }, Some(5432))
        );
        assert_eq!(
            parse_endpoint("redis://localhost"),
            (ProbeKind::Redis { host: None }, None)
        );
    }

    #[test]
    fn a_ping_passes_on_pong_or_noauth_only() {
        assert!(redis_verdict(b"+PONG\r\n").healthy);
        assert!(redis_verdict(b"-NOAUTH Authentication required.\r\n").healthy);
        let loading = redis_verdict(b"-LOADING Redis is loading the dataset in memory\r\n");
        assert!(!loading.healthy);
        assert_eq!(
            loading.response,
            "PING answered -LOADING Redis is loading the dataset in memory"
        );
        assert!(!redis_verdict(b"").healthy);
        let denied = format!(
            "-DENIED Redis is running in protected mode {}\r\n",
            "x".repeat(900)
        );
        let denied = redis_verdict(denied.as_bytes());
        assert!(!denied.healthy);
        assert!(
            denied
                .response
                .starts_with("PING answered -DENIED Redis is running in protected mode")
        );
        assert!(
            denied.response.ends_with(" …") && denied.response.len() < 200,
            "{}",
            denied.response
        );
    }

    #[test]
    fn verdicts_follow_the_status_code() {
        let ok = http_verdict(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", &[]);
        assert!(ok.healthy);
        assert_eq!(ok.response, "HTTP/1.1 200 OK: ok");
        let bad = http_verdict(
            b"HTTP/1.0 503 Service Unavailable\r\n\r\nloading model",
            &[],
        );
        assert!(!bad.healthy);
        assert_eq!(
            bad.response,
            "HTTP/1.0 503 Service Unavailable: loading model"
        );
        assert!(!http_verdict(b"", &[]).healthy);
        assert!(!http_verdict(b"+PONG\r\n", &[]).healthy);
    }

    #[test]
    fn an_expected_body_must_be_there_in_full() {
        let tags = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"models\":[{\"name\":\"llama3.2:latest\",\"model\":\"llama3.2:latest\"}]}";
        let want = |names: &[&str]| -> Vec<String> {
            names.iter().map(|n| format!("\"name\":\"{n}\"")).collect()
        };
        assert!(http_verdict(tags, &want(&["llama3.2:latest"])).healthy);
        let pulling = http_verdict(tags, &want(&["llama3.2:latest", "qwen2.5:0.5b"]));
        assert!(!pulling.healthy);
        assert_eq!(
            pulling.response,
            r#"HTTP/1.1 200 OK, but the answer does not contain `"name":"qwen2.5:0.5b"`"#
        );
        // A failing status stays the reason, whatever the body.
        let down = http_verdict(b"HTTP/1.1 500 Internal Server Error\r\n\r\n", &want(&["x"]));
        assert!(!down.healthy);
        assert!(down.response.starts_with("HTTP/1.1 500"));
    }
}
