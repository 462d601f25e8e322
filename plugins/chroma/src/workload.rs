//! The `chroma` workload: vector inserts and nearest-neighbour queries over Chroma's
//! HTTP API v2, one keep-alive HTTP/1.1 connection per worker.
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `op` | `insert` (one `add` of `batch_size` vectors per request), `query` (the `k` nearest neighbours of one vector per request, in a collection of `documents` vectors), or `mixed` (each request a query with probability `query_fraction`, else an insert) | `query` |
//! | `dimension` | the vectors' dimension | 384 |
//! | `batch_size` | vectors per insert | 100 |
//! | `documents` | vectors in the collection queries search: inserted once, when it has fewer | 1000 |
//! | `k` | neighbours per query (`n_results`) | 10 |
//! | `query_fraction` | `mixed`: the share of queries | 0.5 |
//! | `collection` | the collection's name (made when missing, never deleted) | `orchestrator-d{dimension}-n{documents}` for `query` and `mixed`, `orchestrator-insert-d{dimension}` for `insert` |
//! | `tenant`, `database` | where the collection is | `default_tenant`, `default_database` |
//! | `timeout_s` | a request slower than this fails as `timeout` | 30 |
//!
//! The original tool's names are read too: `num_documents`, `embedding_dimension`,
//! `top_k`, `collection_name`, and `num_queries` (the number of requests).
//!
//! Vectors are seeded: request `n`'s, and the collection's `i`th, come from a generator
//! seeded with its number, each component in [-1, 1] with four decimals. An insert's
//! ids are the run's own (a random prefix, then `n` and the vector's place), so every
//! insert adds new vectors; the query collection's ids are `doc-{i}`, so clients
//! filling it together add each vector once. A query answered with fewer than
//! `min(k, documents)` neighbours fails as `chroma_short_answer`.
//!
//! Summaries: an insert run counts `vectors` (`items_per_second` is vectors per
//! second), a query run the `results` returned; `mixed` has per-operation figures. The
//! summary's `server_counters` hold the collection's own count (Chroma's `count`),
//! grown over the run: for an insert run, the vectors Chroma stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use orchestrator_core::workload::{
    Connection, Outcome, Rng, Workload, parse_parameters, timeout_parameter, within,
};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use orchestrator_plugin_http::{Url, json_request, open_http1};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

/// The `chroma` workload driver.
#[derive(Debug, Clone, Copy)]
pub struct ChromaWorkloadDriver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Insert,
    Query,
    Mixed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    op: Option<Op>,
    #[serde(default)]
    dimension: Option<u32>,
    #[serde(default)]
    batch_size: Option<u32>,
    #[serde(default)]
    documents: Option<u64>,
    #[serde(default)]
    k: Option<u32>,
    #[serde(default)]
    query_fraction: Option<f64>,
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    timeout_s: Option<f64>,
}

const KNOWN: &str = "op (insert|query|mixed), dimension, batch_size, documents, k, \
                     query_fraction, collection, tenant, database, timeout_s";
const MAX_DIMENSION: u32 = 65_536;
const MAX_BATCH: u32 = 100_000;

fn bad(message: impl Into<String>) -> DriverError {
    DriverError::new(message, format!("the chroma workload takes {KNOWN}"))
}

struct Shared {
    url: Url,
    authority: String,
    /// `/api/v2/tenants/T/databases/D/collections`.
    collections: String,
    collection: String,
    op: Op,
    dimension: u32,
    batch_size: u32,
    documents: u64,
    k: u32,
    query_fraction: f64,
    timeout: Duration,
    /// Ids of this workload's inserts start with it: unique across runs.
    prefix: String,
    /// The collection's id, found (or made, and filled for queries) once.
    ready: OnceCell<String>,
}

/// The prepared workload.
pub struct ChromaWorkload(Arc<Shared>);

/// A name Chroma accepts: 3–512 of `[a-zA-Z0-9._-]`, alphanumeric at both ends.
fn valid_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric();
    (3..=512).contains(&name.len())
        && name.chars().all(|c| ok(c) || matches!(c, '.' | '_' | '-'))
        && name.starts_with(ok)
        && name.ends_with(ok)
}

impl ChromaWorkload {
    /// Checks the parameters and prepares the requests for `url` (`http://HOST:PORT`).
    ///
    /// # Errors
    /// An unknown parameter or value, or a URL that is not `http://`.
    pub fn new(url: &str, parameters: &Map<String, Value>) -> Result<Self, DriverError> {
        let p: Params = parse_parameters("chroma", KNOWN, parameters)?;
        let op = p.op.unwrap_or(Op::Query);
        let dimension = p.dimension.unwrap_or(384);
        if dimension == 0 || dimension > MAX_DIMENSION {
            return Err(bad(format!(
                "dimension must be between 1 and {MAX_DIMENSION}"
            )));
        }
        let batch_size = p.batch_size.unwrap_or(100);
        if batch_size == 0 || batch_size > MAX_BATCH {
            return Err(bad(format!("batch_size must be between 1 and {MAX_BATCH}")));
        }
        let documents = p.documents.unwrap_or(1000);
        if documents == 0 {
            return Err(bad("documents must be at least 1"));
        }
        let k = p.k.unwrap_or(10);
        if k == 0 {
            return Err(bad("k must be at least 1"));
        }
        let query_fraction = p.query_fraction.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&query_fraction) {
            return Err(bad("query_fraction must be between 0 and 1"));
        }
        if p.query_fraction.is_some() && op != Op::Mixed {
            return Err(bad("query_fraction is for `op: mixed`"));
        }
        let collection = p.collection.unwrap_or_else(|| match op {
            Op::Insert => format!("orchestrator-insert-d{dimension}"),
            _ => format!("orchestrator-d{dimension}-n{documents}"),
        });
        for (key, name) in [
            ("collection", Some(collection.as_str())),
            ("tenant", p.tenant.as_deref()),
            ("database", p.database.as_deref()),
        ] {
            if let Some(name) = name {
                if !valid_name(name) {
                    return Err(DriverError::new(
                        format!("`{key}: {name}` is not a name Chroma accepts"),
                        "3 to 512 letters, digits, `.`, `_` or `-`, starting and ending with a letter or digit",
                    ));
                }
            }
        }
        let parsed = Url::parse(url).map_err(|e| {
            DriverError::new(
                format!("the chroma workload needs an http:// URL: {}", e.message),
                "e.g. http://node1:8000 (a session's target URL)",
            )
        })?;
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            ^ u128::from(std::process::id()) << 64;
        Ok(Self(Arc::new(Shared {
            authority: format!("{}:{}", parsed.host, parsed.port),
            url: parsed,
            collections: format!(
                "/api/v2/tenants/{}/databases/{}/collections",
                p.tenant.as_deref().unwrap_or("default_tenant"),
                p.database.as_deref().unwrap_or("default_database")
            ),
            collection,
            op,
            dimension,
            batch_size,
            documents,
            k,
            query_fraction,
            timeout: timeout_parameter(p.timeout_s, 30.0)?,
            prefix: format!("{:x}", nonce & u128::from(u64::MAX) ^ nonce >> 64),
            ready: OnceCell::new(),
        })))
    }
}

/// Appends a seeded vector of `dimension` components in [-1, 1], four decimals each,
/// as JSON numbers (written by hand: a million of them per second cost little).
fn push_vector(body: &mut Vec<u8>, seed: u64, dimension: u32) {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D);
    body.push(b'[');
    for i in 0..dimension {
        if i > 0 {
            body.push(b',');
        }
        // -10000..=10000 ten-thousandths.
        let v = i64::try_from(rng.next_u64() % 20_001).unwrap_or(0) - 10_000;
        if v < 0 {
            body.push(b'-');
        }
        let v = v.unsigned_abs();
        body.push(b'0' + u8::try_from(v / 10_000).unwrap_or(0));
        body.push(b'.');
        let frac = v % 10_000;
        for d in [1000, 100, 10, 1] {
            body.push(b'0' + u8::try_from(frac / d % 10).unwrap_or(0));
        }
    }
    body.push(b']');
}

/// An `add` body: `ids` and their vectors (`seeds`).
fn add_body(ids: &[String], seeds: impl Iterator<Item = u64>, dimension: u32) -> Bytes {
    let mut body = Vec::with_capacity(ids.len() * (dimension as usize * 8 + 32));
    body.extend_from_slice(b"{\"ids\":");
    body.extend_from_slice(&serde_json::to_vec(ids).expect("strings serialise"));
    body.extend_from_slice(b",\"embeddings\":[");
    for (i, seed) in seeds.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        push_vector(&mut body, seed, dimension);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

/// The seed of the query collection's `i`th vector, and of request `n`'s vectors:
/// apart, so that no query is one of the stored vectors by construction.
fn document_seed(i: u64) -> u64 {
    i
}
fn request_seed(n: u64, j: u64) -> u64 {
    (1 << 63) | (n << 20) ^ j
}

impl Shared {
    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        open_http1(&self.url, self.timeout).await
    }

    /// Sends one request and reads its whole answer: status and body.
    async fn call(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), hyper::Error> {
        // An HTTP/1 connection takes its next request only once it has finished the
        // last one (else hyper refuses it as "not ready").
        sender.ready().await?;
        let answer = sender
            .send_request(json_request(&self.authority, method, path, body))
            .await?;
        let status = answer.status().as_u16();
        let body = answer.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// A call whose failure stops the run before any load: `what` names it.
    async fn setup_call(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        method: Method,
        path: &str,
        body: Bytes,
        what: &str,
    ) -> Result<Value, String> {
        let (status, body) = self
            .call(sender, method, path, body)
            .await
            .map_err(|e| format!("{what} at {}: {e}", self.authority))?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "{what} at {} answered {status}: {}",
                self.authority,
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{what}: not JSON: {e}"))
    }

    /// The collection's id (made when missing), filled to `documents` vectors first
    /// for queries.
    async fn prepare(&self, sender: &mut SendRequest<Full<Bytes>>) -> Result<String, String> {
        let made = self
            .setup_call(
                sender,
                Method::POST,
                &self.collections,
                Bytes::from(
                    serde_json::json!({"name": self.collection, "get_or_create": true}).to_string(),
                ),
                &format!("making the collection {}", self.collection),
            )
            .await?;
        let id = made["id"]
            .as_str()
            .ok_or_else(|| {
                format!(
                    "Chroma made the collection {} without an id",
                    self.collection
                )
            })?
            .to_owned();
        if self.op == Op::Insert {
            return Ok(id);
        }
        let count = self.count(sender, &id).await?;
        let mut next = count;
        while next < self.documents {
            let end = (next + u64::from(self.batch_size)).min(self.documents);
            let ids: Vec<String> = (next..end).map(|i| format!("doc-{i}")).collect();
            let body = add_body(&ids, (next..end).map(document_seed), self.dimension);
            self.setup_call(
                sender,
                Method::POST,
                &format!("{}/{id}/add", self.collections),
                body,
                &format!(
                    "filling the collection {} with {} vectors",
                    self.collection, self.documents
                ),
            )
            .await?;
            next = end;
        }
        Ok(id)
    }

    async fn count(&self, sender: &mut SendRequest<Full<Bytes>>, id: &str) -> Result<u64, String> {
        let counted = self
            .setup_call(
                sender,
                Method::GET,
                &format!("{}/{id}/count", self.collections),
                Bytes::new(),
                &format!("counting the collection {}", self.collection),
            )
            .await?;
        counted.as_u64().ok_or_else(|| {
            format!(
                "Chroma counted the collection {} as {counted}",
                self.collection
            )
        })
    }
}

#[async_trait]
impl Workload for ChromaWorkload {
    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let s = &self.0;
        let mut sender = s.open().await?;
        let id = s
            .ready
            .get_or_try_init(|| s.prepare(&mut sender))
            .await?
            .clone();
        Ok(Box::new(ChromaConnection {
            add: format!("{}/{id}/add", s.collections),
            query: format!("{}/{id}/query", s.collections),
            shared: s.clone(),
            sender,
        }))
    }

    async fn server_counters(&self) -> Option<BTreeMap<String, u64>> {
        let s = &self.0;
        let id = s.ready.get()?;
        let mut sender = s.open().await.ok()?;
        let count = s.count(&mut sender, id).await.ok()?;
        Some(BTreeMap::from([("collection_count".to_owned(), count)]))
    }

    fn unit(&self) -> Option<&'static str> {
        match self.0.op {
            Op::Insert => Some("vectors"),
            Op::Query => Some("results"),
            Op::Mixed => None,
        }
    }
}

struct ChromaConnection {
    shared: Arc<Shared>,
    sender: SendRequest<Full<Bytes>>,
    add: String,
    query: String,
}

impl ChromaConnection {
    async fn insert(&mut self, n: u64) -> Outcome {
        let s = &self.shared;
        let batch = u64::from(s.batch_size);
        let ids: Vec<String> = (0..batch)
            .map(|j| format!("{}-{n}-{j}", s.prefix))
            .collect();
        let body = add_body(&ids, (0..batch).map(|j| request_seed(n, j)), s.dimension);
        match s
            .call(&mut self.sender, Method::POST, &self.add, body)
            .await
        {
            Ok((status, body)) if (200..300).contains(&status) => Outcome {
                items: batch,
                bytes: body.len() as u64,
                ..Outcome::default()
            },
            Ok((status, _)) => Outcome {
                error: Some(format!("http_{status}")),
                ..Outcome::default()
            },
            Err(_) => Outcome::failed("connection"),
        }
    }

    async fn query(&mut self, n: u64) -> Outcome {
        let s = &self.shared;
        let mut body = Vec::with_capacity(s.dimension as usize * 8 + 96);
        body.extend_from_slice(b"{\"query_embeddings\":[");
        push_vector(&mut body, request_seed(n, u64::from(u32::MAX)), s.dimension);
        body.extend_from_slice(
            format!("],\"n_results\":{},\"include\":[\"distances\"]}}", s.k).as_bytes(),
        );
        match s
            .call(
                &mut self.sender,
                Method::POST,
                &self.query,
                Bytes::from(body),
            )
            .await
        {
            Ok((status, body)) if (200..300).contains(&status) => {
                let found = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| Some(v["ids"].get(0)?.as_array()?.len() as u64));
                let wanted = u64::from(s.k).min(s.documents);
                match found {
                    Some(found) if found >= wanted => Outcome {
                        items: found,
                        bytes: body.len() as u64,
                        ..Outcome::default()
                    },
                    Some(_) => Outcome {
                        error: Some("chroma_short_answer".into()),
                        ..Outcome::default()
                    },
                    None => Outcome {
                        error: Some("bad_json".into()),
                        ..Outcome::default()
                    },
                }
            }
            Ok((status, _)) => Outcome {
                error: Some(format!("http_{status}")),
                ..Outcome::default()
            },
            Err(_) => Outcome::failed("connection"),
        }
    }
}

#[async_trait]
impl Connection for ChromaConnection {
    async fn request(&mut self, n: u64) -> Outcome {
        let s = self.shared.clone();
        let (query, label) = match s.op {
            Op::Insert => (false, None),
            Op::Query => (true, None),
            Op::Mixed => {
                // Uniform in [0, 1) from the request's number: reproducible.
                #[allow(clippy::cast_precision_loss)]
                let draw = (Rng::new(n ^ 0xC3A5_C85C_97CB_3127).next_u64() >> 11) as f64
                    / (1u64 << 53) as f64;
                let query = draw < s.query_fraction;
                (query, Some(if query { "query" } else { "insert" }))
            }
        };
        let mut out = if query {
            within(s.timeout, self.query(n)).await
        } else {
            within(s.timeout, self.insert(n)).await
        };
        out.operation = label;
        out
    }
}

impl WorkloadDriver for ChromaWorkloadDriver {
    fn name(&self) -> &'static str {
        "chroma"
    }

    fn description(&self) -> &'static str {
        "Chroma vector database: seeded vector inserts and top-k queries over its HTTP API v2"
    }

    fn fits(&self) -> &'static [&'static str] {
        &["chroma"]
    }

    fn original_parameters(&self) -> &'static [(&'static str, &'static str)] {
        // The original's chroma_benchmark client's parameters.
        &[
            ("num_documents", "documents"),
            ("embedding_dimension", "dimension"),
            ("top_k", "k"),
            ("collection_name", "collection"),
            ("num_queries", "requests"),
        ]
    }

    fn parameters_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "op": {"enum": ["insert", "query", "mixed"], "default": "query"},
                "dimension": {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION, "default": 384},
                "batch_size": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH, "default": 100},
                "documents": {"type": "integer", "minimum": 1, "default": 1000},
                "k": {"type": "integer", "minimum": 1, "default": 10},
                "query_fraction": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
                "collection": {"type": "string"},
                "tenant": {"type": "string"},
                "database": {"type": "string"},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 30}
            }
        })
    }

    fn workload(
        &self,
        url: &str,
        parameters: &Map<String, Value>,
    ) -> Option<Result<Arc<dyn Workload>, DriverError>> {
        Some(ChromaWorkload::new(url, parameters).map(|w| Arc::new(w) as Arc<dyn Workload>))
    }
}

inventory::submit! { WorkloadDriverEntry(&ChromaWorkloadDriver) }

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: &Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn error(v: &Value) -> String {
        ChromaWorkload::new("http://h:8000", &params(v))
            .err()
            .unwrap()
            .message
    }

    #[test]
    fn parameters_are_checked() {
        assert!(
            ChromaWorkload::new(
                "http://h:8000",
                &params(&serde_json::json!({"op": "insert"}))
            )
            .is_ok()
        );
        assert!(error(&serde_json::json!({"op": "upsert"})).contains("unknown variant `upsert`"));
        assert!(error(&serde_json::json!({"dimension": 0})).contains("dimension must be"));
        assert!(error(&serde_json::json!({"batch_size": 0})).contains("batch_size must be"));
        assert!(error(&serde_json::json!({"k": 0})).contains("k must be"));
        assert!(error(&serde_json::json!({"query_fraction": 0.3})).contains("for `op: mixed`"));
        assert!(
            error(&serde_json::json!({"op": "mixed", "query_fraction": 2}))
                .contains("between 0 and 1")
        );
        assert!(
            error(&serde_json::json!({"collection": "x"})).contains("not a name Chroma accepts")
        );
        assert!(error(&serde_json::json!({"top_k": 3})).contains("unknown field `top_k`"));
        assert!(
            ChromaWorkload::new("redis://h:1", &Map::new())
                .err()
                .unwrap()
                .message
                .contains("http://")
        );
        let w = ChromaWorkload::new(
            "http://h:8000",
            &params(&serde_json::json!({"dimension": 8, "documents": 50})),
        )
        .unwrap();
        assert_eq!(w.0.collection, "orchestrator-d8-n50");
        assert_eq!(
            w.0.collections,
            "/api/v2/tenants/default_tenant/databases/default_database/collections"
        );
    }

    #[test]
    fn vectors_are_seeded_json_arrays_in_range() {
        let mut a = Vec::new();
        push_vector(&mut a, 7, 64);
        let mut b = Vec::new();
        push_vector(&mut b, 7, 64);
        assert_eq!(a, b, "the same seed, the same vector");
        let v: Vec<f64> = serde_json::from_slice(&a).unwrap();
        assert_eq!(v.len(), 64);
        assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
        assert!(v.iter().any(|x| *x < 0.0) && v.iter().any(|x| *x > 0.0));
        let mut c = Vec::new();
        push_vector(&mut c, 8, 64);
        assert_ne!(a, c);
        let body = add_body(&["a".into(), "b".into()], [1, 2].into_iter(), 3);
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["ids"], serde_json::json!(["a", "b"]));
        assert_eq!(parsed["embeddings"].as_array().unwrap().len(), 2);
        assert_ne!(document_seed(5), request_seed(0, 5));
    }
}
