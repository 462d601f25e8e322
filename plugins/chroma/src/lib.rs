//! Chroma for the HPC Benchmarking Orchestrator: the `chroma` service driver
//! ([`service`]: `chroma run` natively or the image's own server, healthy on its v2
//! heartbeat) and the `chroma` workload ([`workload`]: seeded vector inserts and
//! nearest-neighbour queries over Chroma's HTTP API v2).

pub mod service;
pub mod workload;

pub use service::ChromaService;
pub use workload::{ChromaWorkload, ChromaWorkloadDriver};
