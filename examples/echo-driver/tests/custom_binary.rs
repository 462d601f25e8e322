//! The binary built from `src/bin/my-orchestrator.rs` is a whole orchestrator that also
//! knows the example's `tcp-echo` driver, and that driver runs in the engine.

use std::process::Command;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[test]
fn the_custom_binary_lists_the_new_driver_beside_the_bundled_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_my-orchestrator"))
        .args(["list", "drivers", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let drivers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = drivers
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "chroma",
            "generic",
            "llama-cpp",
            "mysql",
            "ollama",
            "prometheus",
            "vllm",
            "chroma",
            "command",
            "http",
            "mysql",
            "ollama",
            "openai",
            "postgres",
            "redis",
            "tcp-echo"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_driver_runs_in_orchestrator_bench() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_my-orchestrator"))
        .args([
            "bench",
            &format!("tcp://127.0.0.1:{port}"),
            "--driver",
            "tcp-echo",
        ])
        .args([
            "--concurrency",
            "2",
            "--requests",
            "500",
            "-p",
            "message=hello",
            "--json",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["requests_completed"], 500);
    assert_eq!(summary["bytes_received"], 500 * 6);
}
