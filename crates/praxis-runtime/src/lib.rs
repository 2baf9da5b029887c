//! Praxis runtime: the async driver. It feeds the pure kernel with real model replies and
//! tool results, makes every record durable before acting on the next command, tracks
//! workspace changes as blobs, and reports progress to an observer. Also the public
//! library API (`Runtime::run`), run status derivation, and the benchmarks.

pub mod approval;
pub mod bench;
pub mod branch;
pub mod compare;
pub mod config;
pub mod critic;
mod delegate;
pub mod doctor;
mod driver;
pub mod home;
mod host;
pub mod job;
pub mod lane;
mod live;
pub mod mcp_config;
mod observer;
#[cfg(feature = "otel")]
pub mod otel;
pub mod recorded;
pub mod replay;
pub mod run_request;
pub mod session;
pub mod status;
pub mod stores;
pub mod tool_set;
mod trace;
pub mod whatif;
pub mod world;

pub use branch::{BranchFrom, BranchPoint};
pub use driver::{
    Cancel, LiveEvent, NoObserver, ParentLink, RunObserver, RunOptions, RunReport, Runtime,
    RuntimeError, WritGrant, new_run_id,
};
pub use home::DataHome;
pub use run_request::{Asked, CognitionRequest, RequestError, RunRequest, Script};
pub use status::{RunOverview, overview};
