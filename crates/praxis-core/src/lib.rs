//! Praxis core: the vocabulary of a governed run, the pure run kernel, policy, and the
//! `<cmd>` text protocol. Nothing in this crate performs I/O or reads a clock.

pub mod authority;
pub mod cmd;
pub mod contract;
pub mod kernel;
pub mod policy;
pub mod record;
pub mod session;
pub mod types;

pub use authority::{Authority, Authorization, AuthzRequest, Spent};
pub use contract::{CompileError, Compiled, Contracts};
pub use kernel::{
    Command, ContractSet, Event, ExecRequest, Kernel, KernelError, PromptData, build_system_prompt,
};
pub use policy::Policy;
pub use record::{Record, RunResult};
pub use types::*;

/// The content address of a blob: lowercase hex SHA-256 of its bytes. The tool fabric names
/// file contents with it and the ledger stores and verifies blobs under it.
pub fn blob_id(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
