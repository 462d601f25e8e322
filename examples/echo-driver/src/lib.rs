//! An example driver crate that lives outside the orchestrator's own `plugins/`: a
//! `tcp-echo` workload that sends one line per request to a line-echo server and
//! checks that the same line comes back. `docs/writing-a-driver.md` walks through it.

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_core::workload::{Connection, Outcome, Workload};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The `tcp-echo` workload driver.
#[derive(Debug, Clone, Copy)]
pub struct EchoDriver;

/// Where to connect and what to send.
struct Echo {
    address: String,
    message: String,
}

#[async_trait]
impl Workload for Echo {
    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let stream = TcpStream::connect(&self.address)
            .await
            .map_err(|e| format!("{}: {e}", self.address))?;
        Ok(Box::new(EchoConnection {
            stream: BufReader::new(stream),
            line: format!("{}\n", self.message),
        }))
    }
}

struct EchoConnection {
    stream: BufReader<TcpStream>,
    line: String,
}

#[async_trait]
impl Connection for EchoConnection {
    async fn request(&mut self, _n: u64) -> Outcome {
        if self
            .stream
            .get_mut()
            .write_all(self.line.as_bytes())
            .await
            .is_err()
        {
            return Outcome::failed("write");
        }
        let mut answer = String::new();
        match self.stream.read_line(&mut answer).await {
            Ok(0) | Err(_) => Outcome::failed("closed"),
            Ok(n) if answer == self.line => Outcome {
                bytes: n as u64,
                ..Outcome::default()
            },
            Ok(_) => Outcome {
                error: Some("mismatch".into()),
                ..Outcome::default()
            },
        }
    }
}

impl WorkloadDriver for EchoDriver {
    fn name(&self) -> &'static str {
        "tcp-echo"
    }

    fn description(&self) -> &'static str {
        "one line per request to a line-echo server (an example third-party driver)"
    }

    fn parameters_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {"message": {"type": "string", "default": "ping"}}
        })
    }

    fn workload(
        &self,
        url: &str,
        parameters: &Map<String, Value>,
    ) -> Option<Result<Arc<dyn Workload>, DriverError>> {
        Some((|| {
            let address = url
                .split_once("://")
                .map_or(url, |(_, rest)| rest)
                .trim_end_matches('/')
                .to_owned();
            let mut message = "ping".to_owned();
            for (key, value) in parameters {
                match (key.as_str(), value) {
                    ("message", Value::String(m)) => message.clone_from(m),
                    _ => {
                        return Err(DriverError::new(
                            format!("tcp-echo: unknown or invalid parameter `{key}`"),
                            "the tcp-echo workload takes `message` (a string)",
                        ));
                    }
                }
            }
            Ok(Arc::new(Echo { address, message }) as Arc<dyn Workload>)
        })())
    }
}

inventory::submit! { WorkloadDriverEntry(&EchoDriver) }
