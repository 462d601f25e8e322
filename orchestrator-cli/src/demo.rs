//! `orchestrator demo http-server` and `http-client`: a real HTTP/1.1 server and load
//! client, so that a whole session runs on a machine with nothing but this binary
//! (`recipes/complete/local-demo.yaml`). The real load generator is `orchestrator
//! bench`; this client only prints a few figures.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Exit;

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

/// Sends `requests` GETs over `concurrency` keep-alive connections and prints figures.
pub async fn http_client(url: &str, requests: u32, concurrency: u32) -> Exit {
    let Some((host, port, path)) = parse_url(url) else {
        eprintln!("error: `{url}` is not an http://HOST:PORT/PATH URL");
        return Exit::Invalid;
    };
    let concurrency = concurrency.clamp(1, requests.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let share = requests / concurrency + u32::from(worker < requests % concurrency);
        let (host, path) = (host.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            worker_loop(&host, port, &path, share).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0u32;
    for task in tasks {
        let (l, e) = task.await.unwrap_or_default();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        ms(latencies[i])
    };
    #[allow(clippy::cast_precision_loss)]
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!("target: {url}");
    println!(
        "requests: {} ok, {errors} failed, {concurrency} connections",
        latencies.len()
    );
    println!("duration_s: {:.3}", elapsed.as_secs_f64());
    println!("throughput_rps: {rate:.1}");
    println!(
        "latency_ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().copied().map_or(0.0, ms)
    );
    if latencies.is_empty() {
        Exit::Failure
    } else {
        Exit::Success
    }
}

async fn worker_loop(host: &str, port: u16, path: &str, count: u32) -> (Vec<Duration>, u32) {
    let mut latencies = Vec::with_capacity(count as usize);
    let mut errors = 0;
    let mut conn: Option<TcpStream> = None;
    for _ in 0..count {
        let start = Instant::now();
        if conn.is_none() {
            conn = TcpStream::connect((host, port)).await.ok();
            if let Some(c) = &conn {
                let _ = c.set_nodelay(true);
            }
        }
        let ok = match conn.as_mut() {
            Some(stream) => one_request(stream, host, port, path).await.is_ok(),
            None => false,
        };
        if ok {
            latencies.push(start.elapsed());
        } else {
            errors += 1;
            conn = None;
        }
    }
    (latencies, errors)
}

async fn one_request(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
    path: &str,
) -> std::io::Result<()> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: orchestrator-demo\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buffer = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 2") && !head.starts_with("http/1.0 2") {
        return Err(std::io::Error::other(format!(
            "answer: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = buffer.len() - end - 4;
    while have < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok(())
}

fn parse_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 80),
    };
    Some((host.to_owned(), port, path.to_owned()))
}
