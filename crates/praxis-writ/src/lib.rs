//! Praxis writs: who may do what, with which tools and arguments, within which budgets,
//! effect ceiling and time window, and which effects need a human's approval.
//!
//! A writ is a biscuit token (Ed25519, offline attenuation by appended blocks). Each block
//! carries a readable spec; the effective authority is the intersection of every block's
//! spec, so an appended block can only narrow what the writ allows.

mod error;
mod eval;
mod kept;
mod keys;
mod narrow;
pub mod shell;
mod spec;
mod token;

pub use error::WritError;
pub use eval::{Rules, rules};
pub use keys::{IssuerKey, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, TrustAnchor, key_id};
pub use spec::{Approvals, BUILTIN_TOOLS, Budget, ToolGrant, ToolMode, WritSpec};
pub use token::{VerifiedWrit, attenuate, inspect, issue, verify};
