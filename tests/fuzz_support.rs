//! What every fuzz target shares (included by path from each crate's `tests/fuzz.rs`):
//! a proptest runner with a short default for `cargo test` and a long mode.
//!
//! - `PROPTEST_CASES=N`: N cases per round (default: the target's own, small).
//! - `PRAXIS_FUZZ_SECONDS=S`: rounds with fresh seeds until S seconds have passed.
//! - `PRAXIS_FUZZ_TRACE=FILE`: each input is written to FILE before it is tried, so an
//!   input that kills the process (out of memory, a stack overflow, a signal: no panic,
//!   nothing shrunk or saved) is still known afterwards.
//!
//! A failing case is shrunk and its seed saved in `tests/fuzz.proptest-regressions` beside
//! the test file (commit it: every later run replays it first).
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Runs `test` on values of `strategy`; `source_file` is the caller's `file!()` (where its
/// regressions are kept).
pub fn fuzz<S>(
    name: &str,
    source_file: &'static str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let seconds = std::env::var("PRAXIS_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let trace = std::env::var_os("PRAXIS_FUZZ_TRACE");
    let started = Instant::now();
    let deadline = seconds.map(|s| started + Duration::from_secs(s));
    let mut total: u64 = 0;
    loop {
        let config = Config {
            cases,
            source_file: Some(source_file),
            // Beside the test file (`tests/fuzz.proptest-regressions`): the default looks
            // for a lib.rs or main.rs above the source, which integration tests do not have.
            failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
                "proptest-regressions",
            ))),
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let traced = |value: S::Value| {
            if let Some(file) = &trace {
                // Best effort: the trace only helps find an input that kills the process.
                let _ = std::fs::write(file, format!("{name}: {value:?}\n"));
            }
            test(value)
        };
        if let Err(e) = runner.run(&strategy, traced) {
            panic!("fuzz target {name} failed after {total} cases: {e}");
        }
        total += u64::from(cases);
        if deadline.is_none_or(|d| Instant::now() >= d) {
            break;
        }
    }
    eprintln!(
        "fuzz target {name}: {total} cases in {:.1} s, no failure",
        started.elapsed().as_secs_f64()
    );
}

/// One change to an input's bytes: flip a bit of a byte, drop a byte, insert one, cut it short.
#[derive(Clone, Debug)]
pub enum Mutation {
    Flip { at: usize, bit: u8 },
    Remove { at: usize },
    Insert { at: usize, byte: u8 },
    Truncate { at: usize },
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// `input` with `mutations` applied in order.
pub fn mutate(input: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Flip { at, bit } => {
                if !bytes.is_empty() {
                    bytes[at % len] ^= 1 << bit;
                }
            }
            Mutation::Remove { at } => {
                if !bytes.is_empty() {
                    bytes.remove(at % len);
                }
            }
            Mutation::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
            Mutation::Truncate { at } => bytes.truncate(at % len),
        }
    }
    bytes
}

/// One to three mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..4)
}
