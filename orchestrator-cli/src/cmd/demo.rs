//! `orchestrator demo http-server`: a real HTTP/1.1 server, so that a whole session runs
//! on a machine with nothing but this binary (`recipes/complete/local-demo.yaml`, whose
//! client is the `http` workload).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::DemoCommand;

use crate::app::{Exit, runtime};

const BODY: &str = "Hello from the HPC Benchmarking Orchestrator demo service\n";

/// Serves until killed.
pub async fn http_server(bind: &str, port: u16) -> Exit {
    let listener = match TcpListener::bind((bind, port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {bind}:{port}: {e}");
            return Exit::Failure;
        }
    };
    eprintln!("demo http-server listening on {bind}:{port}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve(stream));
    }
}

/// Requests to `/flaky` so far, over all connections.
static FLAKY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                break end;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            if buffer.len() > 64 * 1024 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        buffer.drain(..end + 4);
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let close = head.to_ascii_lowercase().contains("connection: close");
        let (status, body) = match (method, path) {
            ("GET", "/health") => ("200 OK", "ok\n"),
            ("GET" | "HEAD", "/") => ("200 OK", BODY),
            ("GET", "/flaky") => {
                if FLAKY.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10 == 9 {
                    ("500 Internal Server Error", "flaky\n")
                } else {
                    ("200 OK", BODY)
                }
            }
            ("GET", _) => ("404 Not Found", "not found\n"),
            _ => ("405 Method Not Allowed", "only GET\n"),
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(answer.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `orchestrator demo ...`: no config needed.
pub fn demo(command: &DemoCommand) -> Exit {
    runtime(Some(2)).block_on(async {
        match command {
            DemoCommand::HttpServer { port, bind } => http_server(bind, *port).await,
        }
    })
}
