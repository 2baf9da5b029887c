//! Handlers, by resource.

pub(crate) mod approvals;
pub(crate) mod ops;
pub(crate) mod runs;
