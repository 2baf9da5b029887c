//! The HTTP API end to end: a real server on 127.0.0.1:0 in this process, driven over HTTP
//! with reqwest; real runs (scripted provider, real tools, real SQLite ledger).
//!
//! `#[tokio::test]` runs on one thread: the server's tasks and the test's client share it,
//! which makes "a follower is slower than the live channel" deterministic where a test
//! needs it.

mod access;
mod harness;
mod history;
mod limits;
mod live;
