//! The `redis` workload: PING, GET, SET or a mix, through the `redis` crate's
//! multiplexed async connection (one per worker).
//!
//! Parameters:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `op` | `ping`, `get`, `set` or `mixed` (SET on even request numbers, GET on odd) | `ping` |
//! | `value_size` | bytes of each SET value | 3 (as redis-benchmark) |
//! | `keyspace` | keys `key:0` … `key:N-1`, request `n` uses `key:(n mod N)` | 1 |
//! | `pipeline` | commands sent in one round trip (one request of the engine) | 1 |
//! | `timeout_s` | a request slower than this fails as `timeout` | 10 |
//!
//! The URL is `redis://HOST:PORT[/DB]`; a session's `TARGET_URL` (`http://…`) is read
//! for its host and port.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::workload::{
    Connection, Outcome, Workload, parse_parameters, timeout_parameter,
};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The `redis` workload driver.
#[derive(Debug, Clone, Copy)]
pub struct RedisDriver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Ping,
    Get,
    Set,
    Mixed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    op: Option<Op>,
    #[serde(default)]
    value_size: Option<usize>,
    #[serde(default)]
    keyspace: Option<u64>,
    #[serde(default)]
    pipeline: Option<u32>,
    #[serde(default)]
    timeout_s: Option<f64>,
}

struct Shared {
    client: redis::Client,
    op: Op,
    value: Vec<u8>,
    keyspace: u64,
    pipeline: u32,
    timeout: Duration,
}

/// The prepared workload.
pub struct RedisWorkload(Arc<Shared>);

const KNOWN: &str = "op (ping|get|set|mixed), value_size, keyspace, pipeline, timeout_s";

fn bad(message: impl Into<String>) -> DriverError {
    DriverError::new(message, format!("the redis workload takes {KNOWN}"))
}

impl RedisWorkload {
    /// Checks the parameters and prepares commands for `url`.
    ///
    /// # Errors
    /// An unknown parameter or value, or a URL that is not redis:// or http://.
    pub fn new(url: &str, parameters: &Map<String, Value>) -> Result<Self, DriverError> {
        let p: Params = parse_parameters("redis", KNOWN, parameters)?;
        // A session hands every workload an http:// URL; only host and port matter.
        let url = match url.strip_prefix("http://") {
            Some(rest) => format!("redis://{}", rest.split('/').next().unwrap_or(rest)),
            None => url.to_owned(),
        };
        let client = redis::Client::open(url.as_str())
            .map_err(|e| DriverError::new(format!("`{url}`: {e}"), "use redis://HOST:PORT[/DB]"))?;
        let pipeline = p.pipeline.unwrap_or(1);
        let keyspace = p.keyspace.unwrap_or(1);
        if pipeline == 0 || keyspace == 0 {
            return Err(bad("pipeline and keyspace must be at least 1"));
        }
        let timeout = timeout_parameter(p.timeout_s, 10.0)?;
        Ok(Self(Arc::new(Shared {
            client,
            op: p.op.unwrap_or(Op::Ping),
            value: vec![b'x'; p.value_size.unwrap_or(3)],
            keyspace,
            pipeline,
            timeout,
        })))
    }
}

#[async_trait]
impl Workload for RedisWorkload {
    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let s = &self.0;
        let connection =
            tokio::time::timeout(s.timeout, s.client.get_multiplexed_async_connection())
                .await
                .map_err(|_| "connecting timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        Ok(Box::new(RedisConnection {
            shared: self.0.clone(),
            connection,
        }))
    }
}

struct RedisConnection {
    shared: Arc<Shared>,
    connection: MultiplexedConnection,
}

impl RedisConnection {
    async fn send(&mut self, n: u64) -> Outcome {
        let s = &self.shared;
        let mut pipe = redis::pipe();
        for i in 0..u64::from(s.pipeline) {
            let number = n.wrapping_mul(u64::from(s.pipeline)).wrapping_add(i);
            let key = format!("key:{}", number % s.keyspace);
            let op = match s.op {
                Op::Mixed if number % 2 == 0 => Op::Set,
                Op::Mixed => Op::Get,
                other => other,
            };
            match op {
                Op::Ping => pipe.cmd("PING"),
                Op::Get => pipe.cmd("GET").arg(&key),
                Op::Set | Op::Mixed => pipe.cmd("SET").arg(&key).arg(&s.value[..]),
            };
        }
        match pipe
            .query_async::<Vec<redis::Value>>(&mut self.connection)
            .await
        {
            Ok(values) => Outcome {
                bytes: values.iter().map(value_bytes).sum(),
                ..Outcome::default()
            },
            Err(e) if e.is_io_error() || e.is_connection_dropped() => Outcome::failed("connection"),
            Err(e) => Outcome {
                error: Some(format!(
                    "redis_{}",
                    e.code().unwrap_or("error").to_ascii_lowercase()
                )),
                ..Outcome::default()
            },
        }
    }
}

fn value_bytes(v: &redis::Value) -> u64 {
    match v {
        redis::Value::BulkString(b) => b.len() as u64,
        redis::Value::SimpleString(s) => s.len() as u64,
        redis::Value::Array(items) => items.iter().map(value_bytes).sum(),
        _ => 0,
    }
}

#[async_trait]
impl Connection for RedisConnection {
    async fn request(&mut self, n: u64) -> Outcome {
        orchestrator_core::workload::within(self.shared.timeout, self.send(n)).await
    }
}

impl WorkloadDriver for RedisDriver {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn description(&self) -> &'static str {
        "Redis PING, GET, SET or mixed, with value size, key space and pipelining"
    }

    fn original_parameters(&self) -> &'static [(&'static str, &'static str)] {
        // The original's redis_benchmark client: redis-benchmark's -n, -c and -t;
        // `native_tests: "ping,set,get"` is one run per operation.
        &[
            ("num_operations", "requests"),
            ("clients", "concurrency"),
            ("native_tests", "op"),
        ]
    }

    fn parameters_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "op": {"enum": ["ping", "get", "set", "mixed"], "default": "ping"},
                "value_size": {"type": "integer", "minimum": 0, "default": 3},
                "keyspace": {"type": "integer", "minimum": 1, "default": 1},
                "pipeline": {"type": "integer", "minimum": 1, "default": 1},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 10}
            }
        })
    }

    fn workload(
        &self,
        url: &str,
        parameters: &Map<String, Value>,
    ) -> Option<Result<Arc<dyn Workload>, DriverError>> {
        Some(RedisWorkload::new(url, parameters).map(|w| Arc::new(w) as Arc<dyn Workload>))
    }
}

inventory::submit! { WorkloadDriverEntry(&RedisDriver) }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        let p = |v: Value| v.as_object().unwrap().clone();
        assert!(
            RedisWorkload::new(
                "redis://h:6379",
                &p(serde_json::json!({"op": "set", "pipeline": 16}))
            )
            .is_ok()
        );
        let e = RedisWorkload::new("redis://h:6379", &p(serde_json::json!({"op": "del"})))
            .err()
            .unwrap();
        assert!(e.message.contains("unknown variant `del`"), "{}", e.message);
        let e = RedisWorkload::new("redis://h:6379", &p(serde_json::json!({"pipeline": 0})))
            .err()
            .unwrap();
        assert!(e.message.contains("at least 1"));
        // A session's http:// target URL is read for its host and port.
        assert!(RedisWorkload::new("http://node1:6379", &Map::new()).is_ok());
    }
}
