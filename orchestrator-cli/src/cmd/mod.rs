//! One module per command group. Each uses only `app`, `output`, `engine`, the grammar
//! in `cli` and the library: never another command module.

pub mod bench;
pub mod demo;
pub mod recipes;
pub mod reports;
pub mod run;
pub mod status;
pub mod units;
pub mod workload;
