//! Praxis and the Model Context Protocol, both ways, on the official `rmcp` SDK.
//!
//! - `client`: tools of MCP servers declared in the home `praxis.toml`, offered to the
//!   model as `mcp__{server}__{tool}` and governed like any built-in tool.
//! - `server`: `praxis mcp serve`, which offers Praxis's governed tools to any MCP client.

pub mod client;
pub mod server;
