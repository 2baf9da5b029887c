//! Praxis writs: who may do what, with which tools and arguments, within which budgets,
//! effect ceiling and time window, and which effects need a human's approval.
//!
//! A writ is a biscuit token (Ed25519, offline attenuation by appended blocks). Each block
//! carries a readable spec; the effective authority is the intersection of every block's
//! spec, so an appended block can only narrow what the writ allows.

pub mod shell;
