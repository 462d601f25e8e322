//! MySQL and MariaDB for the HPC Benchmarking Orchestrator: the `mysql` service driver
//! ([`service`]: the server natively or from its image, healthy once it accepts a login)
//! and the `mysql` workload ([`workload`]: sysbench's OLTP transactions or your own SQL).

pub mod service;
pub mod workload;

pub use service::MysqlService;
pub use workload::{MysqlWorkload, MysqlWorkloadDriver};
