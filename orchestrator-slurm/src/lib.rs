//! `orchestrator-slurm`: job scripts rendered from handlebars templates and the
//! `Scheduler` that runs them, `Slurm` (sbatch/squeue/scancel/scontrol over any
//! Shell) or `Local` (the same script as a detached process group).
//!
//! Knows nothing of drivers or sessions. The implementation lands with the
//! cluster-access work (issue #3); this crate is the workspace's placeholder for it
//! and exports nothing yet.
