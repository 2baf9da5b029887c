//! `praxis mcp serve`: parses its flags, equips each session's run like `praxis run` does
//! (writ, approver waiting for `praxis approve`, checkpoint key, `praxis cancel`), and hands
//! them to the MCP host (`praxis_server::mcp`, over `praxis_mcp::server`).

use crate::{governance, runtime_key, writs};
use anyhow::{Context, Result, anyhow};
use praxis_runtime::approval::StoreApprover;
use praxis_runtime::run_request::{self, Asked, CognitionRequest, RunRequest};
use praxis_runtime::{Cancel, DataHome, LiveEvent, RunObserver, Runtime, WritGrant, new_run_id};
use praxis_server::mcp::{PrepareRun, RuntimeHost};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub enum McpCmd {
    /// Offer Praxis's governed tools to MCP clients: one MCP session is one run, each call
    /// a proposal judged under the writ, run in the sandbox and ledgered.
    #[command(
        after_help = "Examples:\n  praxis mcp serve --workspace ~/src/app                      # stdio, for a client that starts it\n  praxis mcp serve --workspace . --writ reviewer.writ\n  praxis mcp serve --http 127.0.0.1:3002 --workspace ~/src/app  # streamable HTTP at /mcp\n\nA refused call comes back as a tool error (isError) naming the rule and the reason; a call\nthat needs approval waits for `praxis approve` (bounded by the writ's approval timeout).\nOver HTTP the API tokens of `praxis serve` apply (PRAXIS_AUTH; `praxis token create`).\nThe session's run ends (completed) when the client ends the session; check it with\n`praxis ledger verify RUN` and `praxis replay RUN`."
    )]
    Serve(ServeArgs),
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Serve one session over stdin/stdout (the default).
    #[arg(long, conflicts_with = "http")]
    stdio: bool,
    /// Serve streamable HTTP on ADDR (e.g. 127.0.0.1:3002), endpoint /mcp.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// The workspace the tools act on (default: the current directory).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Writ token file the sessions act under (default: the development writ).
    #[arg(long, value_name = "FILE")]
    writ: Option<PathBuf>,
    /// Most calls in one session (the run's max steps).
    #[arg(long)]
    max_steps: Option<u32>,
    /// Longest a session's run may last, in seconds.
    #[arg(long)]
    max_seconds: Option<u64>,
}

pub async fn dispatch(home: &DataHome, command: McpCmd) -> Result<ExitCode> {
    match command {
        McpCmd::Serve(args) => serve(home, args).await,
    }
}

async fn serve(home: &DataHome, args: ServeArgs) -> Result<ExitCode> {
    let workspace = crate::launch::local_workspace(home, args.workspace.as_deref())?;
    let grant = WritGrant {
        token: writs::for_run(home, args.writ.as_deref())?,
        anchor: writs::anchor_for_run(home, args.writ.is_some())?,
    };
    let runtime = Runtime::new(
        home.open_ledger()?.ledger(),
        Arc::new(praxis_runtime::tool_set::registry_from_env(home)?),
    )
    .with_home(home.clone());
    let checkpoint_key = Arc::new(runtime_key(home)?);
    let approvals = governance::open_store(home)?;
    let prepare_home = home.clone();
    let prepare: PrepareRun = Arc::new(move || {
        let request = RunRequest {
            task: Asked::new("MCP session".to_string(), "TASK"),
            workspace: workspace.clone(),
            // The client takes the model's place; "mock" only satisfies the resolver.
            cognition: CognitionRequest::named(
                Some("mock".into()),
                None,
                None,
                ["--provider", "--model", "--script"],
            ),
            protocol: None,
            tool_choice: None,
            max_steps: args.max_steps.map(|n| Asked::new(n, "--max-steps")),
            max_seconds: args.max_seconds.map(|n| Asked::new(n, "--max-seconds")),
            max_invalid_replies: None,
            tools: None,
            read_only: false,
        };
        let resolved = run_request::resolve(&prepare_home, request, &|k| std::env::var(k).ok())
            .map_err(|e| match e.field {
                Some(flag) => format!("{flag}: {}", e.message),
                None => e.message,
            })?;
        let mut options = resolved.options;
        options.writ = Some(grant.clone());
        options.checkpoint_key = Some(checkpoint_key.clone());
        options.approver = Arc::new(StoreApprover::new(approvals.clone()));
        let cancel = Cancel::default();
        options.cancel = cancel.clone();
        let run_id = options.run_id.get_or_insert_with(new_run_id).clone();
        // `praxis cancel RUN` from another terminal reaches the session's run.
        crate::cancel::watch_requests(&prepare_home, run_id, cancel).map_err(|e| e.to_string())?;
        Ok(options)
    });
    let host = RuntimeHost::new(runtime, prepare, Arc::new(Announce));
    match args.http {
        None => {
            praxis_mcp::server::serve_stdio(Arc::new(host)).await?;
        }
        Some(addr) => {
            let config = praxis_server::ServerConfig::from_home(home.clone())?;
            let addr = praxis_server::parse_bind(&addr).map_err(|e| anyhow!("--http: {e}"))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--http: binding {addr}"))?;
            eprintln!(
                "praxis mcp: serving MCP on http://{}/mcp (data {})",
                listener.local_addr()?,
                home.root().display()
            );
            praxis_server::mcp::serve_http(listener, host, &config, async {
                crate::wait_for_stop_signal().await;
            })
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr which run each session is (stdout is the MCP channel over stdio).
struct Announce;

impl RunObserver for Announce {
    fn on_event(&self, run_id: &str, event: LiveEvent<'_>) {
        if let LiveEvent::Entry(entry) = event {
            match entry.kind.as_str() {
                praxis_core::record::kinds::RUN_STARTED => {
                    eprintln!("praxis mcp: session started run {run_id}")
                }
                praxis_core::record::kinds::RUN_FINISHED => {
                    eprintln!("praxis mcp: run {run_id} finished")
                }
                _ => {}
            }
        }
    }
}
