//! `orchestrator-core`: driver traits and their registry, the session lifecycle, the
//! state store, health gating, the workload engine and reports.
//!
//! Knows drivers only through the registry. The implementation lands with the
//! sessions and workload work (issues #4 and #5); this crate is the workspace's
//! placeholder for it and exports nothing yet.
