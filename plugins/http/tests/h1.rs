//! The `http` driver's HTTP/1.1 exchange against scripted servers: each test server
//! answers with exact bytes (split where a test wants the answer to arrive in pieces)
//! and records the requests it got, for the framings and failures nginx cannot be
//! asked to produce on demand.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestrator_core::workload::{self, LoadSpec, Workload};
use orchestrator_plugin_http::HttpWorkload;
use orchestrator_plugin_http::h1::{Answer, Failure, H1Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does for one request.
#[derive(Clone)]
struct Reply {
    /// Written in this order, each piece flushed and 20 ms after the last.
    pieces: Vec<&'static [u8]>,
    /// Close the connection after writing.
    close: bool,
}

fn reply(bytes: &'static [u8]) -> Reply {
    Reply {
        pieces: vec![bytes],
        close: false,
    }
}

fn pieces(pieces: Vec<&'static [u8]>) -> Reply {
    Reply {
        pieces,
        close: false,
    }
}

fn then_close(bytes: &'static [u8]) -> Reply {
    Reply {
        pieces: vec![bytes],
        close: true,
    }
}

/// A server that answers every request with `make(i)` (`i` counts requests over all
/// connections), records each request's bytes and counts connections.
struct Scripted {
    port: u16,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start(make: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let make = Arc::new(make);
        let (recorded, accepted) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, make.clone(), recorded.clone()));
            }
        });
        Self {
            port,
            requests,
            connections,
        }
    }

    async fn connect(&self) -> H1Connection {
        H1Connection::new(TcpStream::connect(("127.0.0.1", self.port)).await.unwrap())
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

async fn serve(
    mut stream: TcpStream,
    make: Arc<impl Fn(usize) -> Reply + Send + Sync + 'static>,
    recorded: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let mut have = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // One request: the head, then as many body bytes as its content-length says.
        let request = loop {
            if let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&have[..end]).to_lowercase();
                let body: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse().unwrap());
                if have.len() >= end + 4 + body {
                    break have.drain(..end + 4 + body).collect::<Vec<u8>>();
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => have.extend_from_slice(&buf[..n]),
            }
        };
        let i = {
            let mut requests = recorded.lock().unwrap();
            requests.push(request);
            requests.len() - 1
        };
        let reply = make(i);
        for (k, piece) in reply.pieces.iter().enumerate() {
            if k > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if stream.write_all(piece).await.is_err() {
                return;
            }
        }
        if reply.close {
            return;
        }
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n";

fn ok(status: u16, body_bytes: u64) -> Answer {
    Answer {
        status,
        body_bytes,
        keep_alive: true,
    }
}

#[tokio::test]
async fn a_content_length_body_arriving_in_pieces_is_read_to_its_end() {
    let server = Scripted::start(|i| match i {
        0 => pieces(vec![
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"ngth: 10\r\nServer: t\r\n\r\n01234",
            b"56789",
        ]),
        _ => reply(b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc"),
    })
    .await;
    let mut conn = server.connect().await;
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(200, 10)));
    // The second answer parses from where the first ended: the first was read exactly.
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(404, 3)));
    assert_eq!(conn.answered(), 2);
}

#[tokio::test]
async fn a_chunked_body_with_extensions_and_trailers_counts_its_data() {
    let server = Scripted::start(|i| match i {
        0 => pieces(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhel",
            b"lo\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n",
            b"\r\n",
        ]),
        _ => reply(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"),
    })
    .await;
    let mut conn = server.connect().await;
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(200, 11)));
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(200, 26)));
}

#[tokio::test]
async fn head_204_304_and_interim_answers_have_no_body() {
    let server = Scripted::start(|i| match i {
        0 => reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
        1 => reply(b"HTTP/1.1 204 No Content\r\n\r\n"),
        2 => reply(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 512\r\n\r\n"),
        3 => reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        _ => reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    })
    .await;
    let mut conn = server.connect().await;
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(200, 3)));
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(204, 0)));
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(304, 0)));
    let head = b"HEAD / HTTP/1.1\r\nhost: test\r\n\r\n";
    assert_eq!(conn.exchange(head, true).await, Ok(ok(200, 0)));
    // Had any of those been read as having a body, this answer would be misread.
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(200, 2)));
}

#[tokio::test]
async fn keep_alive_follows_the_version_and_the_connection_header() {
    let server = Scripted::start(|i| match i {
        0 => reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
        1 => reply(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        2 => reply(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok"),
        3 => reply(b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 2\r\n\r\nok"),
        _ => then_close(b"HTTP/1.1 200 OK\r\n\r\nread until the close"),
    })
    .await;
    let mut conn = server.connect().await;
    let closing = |body_bytes| Answer {
        status: 200,
        body_bytes,
        keep_alive: false,
    };
    assert_eq!(conn.exchange(GET, false).await, Ok(closing(2)));
    assert_eq!(conn.exchange(GET, false).await, Ok(closing(2)));
    assert_eq!(conn.exchange(GET, false).await, Ok(ok(200, 2)));
    assert_eq!(conn.exchange(GET, false).await, Ok(closing(2)));
    assert_eq!(conn.exchange(GET, false).await, Ok(closing(20)));
}

#[tokio::test]
async fn malformed_or_cut_answers_fail_with_their_kind() {
    let server = Scripted::start(|i| match i {
        0 => then_close(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"),
        1 => then_close(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n"),
        2 => then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"),
        3 => then_close(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
        4 => then_close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        5 => then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it"),
        _ => then_close(b""),
    })
    .await;
    for expected in [
        Failure::Protocol,
        Failure::Protocol,
        Failure::Protocol,
        Failure::Protocol,
        Failure::Protocol,
        Failure::Closed {
            nothing_read: false,
        },
        Failure::Closed { nothing_read: true },
    ] {
        let mut conn = server.connect().await;
        assert_eq!(conn.exchange(GET, false).await, Err(expected));
    }
    assert_eq!(Failure::Protocol.kind(), "http_protocol");
    assert_eq!(
        Failure::Closed { nothing_read: true }.kind(),
        "connection_closed"
    );
}

#[tokio::test]
async fn a_head_longer_than_64_kib_is_refused() {
    let server = Scripted::start(|_| {
        let long: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 0\r\n\r\n",
                "a".repeat(70_000)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        reply(long)
    })
    .await;
    let mut conn = server.connect().await;
    assert_eq!(conn.exchange(GET, false).await, Err(Failure::Protocol));
}

fn http(url: &str, params: serde_json::Value) -> Arc<dyn Workload> {
    Arc::new(HttpWorkload::new(url, params.as_object().unwrap()).unwrap())
}

#[tokio::test]
async fn the_request_on_the_wire_has_host_headers_and_body_length() {
    let server =
        Scripted::start(|_| reply(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")).await;
    let result = workload::run(
        http(
            &server.url("/ignored"),
            serde_json::json!({
                "method": "post",
                "path": "/items?limit=10",
                "body": "{\"a\": 1}",
                "headers": {"X-Token": "t", "Accept": "application/json", "X-Number": 7},
            }),
        ),
        &LoadSpec::closed(1, 2),
    )
    .await
    .unwrap();
    assert_eq!(result.summary.requests_completed, 2);
    let requests = server.requests.lock().unwrap().clone();
    let expected = format!(
        "POST /items?limit=10 HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: application/json\r\n\
         x-number: 7\r\nx-token: t\r\ncontent-length: 8\r\n\r\n{{\"a\": 1}}",
        server.port
    );
    assert_eq!(requests.len(), 2);
    for request in requests {
        assert_eq!(String::from_utf8(request).unwrap(), expected);
    }

    // A Host header of the user's replaces the URL's; a GET has no content-length.
    let server = Scripted::start(|_| reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).await;
    workload::run(
        http(
            &server.url("/"),
            serde_json::json!({"headers": {"Host": "virtual.example"}}),
        ),
        &LoadSpec::closed(1, 1),
    )
    .await
    .unwrap();
    assert_eq!(
        server.requests.lock().unwrap()[0],
        b"GET / HTTP/1.1\r\nhost: virtual.example\r\n\r\n"
    );
}

#[test]
fn headers_the_driver_sets_and_bad_paths_are_refused() {
    for (params, wanted) in [
        (
            serde_json::json!({"headers": {"Content-Length": "5"}}),
            "header `content-length` is set by the driver",
        ),
        (
            serde_json::json!({"headers": {"transfer-encoding": "chunked"}}),
            "header `transfer-encoding` is set by the driver",
        ),
        (
            serde_json::json!({"path": "items"}),
            "`path`: `items` is not a path: it must start with /",
        ),
        (
            serde_json::json!({"path": "/a b"}),
            "`path`: `/a b` is not a path",
        ),
    ] {
        let error = HttpWorkload::new("http://h/", params.as_object().unwrap())
            .err()
            .unwrap();
        assert!(error.message.contains(wanted), "{}", error.message);
    }
}

/// A server that closes every connection after one answer without saying so (what an
/// idle timeout looks like to the client): a GET finds the connection closed and is
/// sent once more on a new one, so nothing fails; a POST is not sent twice, so every
/// second one fails.
#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced_for_idempotent_requests() {
    let server =
        Scripted::start(|_| then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")).await;
    let get = workload::run(
        http(&server.url("/"), serde_json::json!({})),
        &LoadSpec::closed(1, 20),
    )
    .await
    .unwrap();
    assert_eq!(
        (get.summary.requests_completed, get.summary.requests_failed),
        (20, 0),
        "{:?}",
        get.summary.errors
    );
    // 20 requests, each on a connection of its own (the first on the connection that
    // checked the target was reachable).
    assert_eq!(server.requests.lock().unwrap().len(), 20);
    assert_eq!(server.connections.load(Ordering::SeqCst), 20);

    let server =
        Scripted::start(|_| then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")).await;
    let post = workload::run(
        http(&server.url("/"), serde_json::json!({"method": "POST"})),
        &LoadSpec::closed(1, 20),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            post.summary.requests_completed,
            post.summary.requests_failed
        ),
        (10, 10)
    );
    assert_eq!(post.summary.errors["connection_closed"], 10);
}
