//! Interop tests of Praxis's model providers against servers we did not write.
//!
//! This crate has no code of its own: its tests (in `tests/`) drive `praxis-models` and the
//! `praxis` binary against
//!
//! - [aimock](https://www.npmjs.com/package/@copilotkit/aimock), a wire-format mock of the
//!   OpenAI chat completions, Anthropic messages and Ollama chat APIs, with the fixtures in
//!   `fixtures/aimock/` and chaos modes (dropped connections, malformed bodies, cut streams,
//!   error statuses);
//! - SmolLM2-135M served by llama-cpp-python's OpenAI-compatible server: a real model with
//!   grammar-constrained, streamed tool calls.
//!
//! Every test is `#[ignore]`d because it needs those servers; `.ci/interop` installs and
//! starts them, exports their URLs (`PRAXIS_AIMOCK_URL`, `PRAXIS_AIMOCK_DISCONNECT_URL`,
//! `PRAXIS_AIMOCK_MALFORMED_URL`, `PRAXIS_LLAMA_URL`) and runs
//! `cargo test -p praxis-interop -- --ignored`. A test run without its server fails, naming
//! the missing variable.
