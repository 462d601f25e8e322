//! `orchestrator-ssh`: the `Shell` abstraction, run a command (with stdin),
//! upload/download a file, open a TCP stream to `host:port` as seen from the login
//! node, implemented locally (tokio processes) and over SSH.
//!
//! Knows nothing of SLURM. The implementation lands with the cluster-access work
//! (issue #3); this crate is the workspace's placeholder for it and exports nothing yet.
