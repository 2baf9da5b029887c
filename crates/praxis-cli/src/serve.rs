//! `praxis serve` (the HTTP API on this data dir, with the home's MCP tools) and
//! `praxis token` (API tokens per tenant). The server itself is praxis-server.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use praxis_runtime::DataHome;
use std::process::ExitCode;

#[derive(Args)]
pub struct ServeArgs {
    /// Listen address (default 127.0.0.1:3001; also PRAXIS_BIND).
    #[arg(long, env = "PRAXIS_BIND", default_value = praxis_server::DEFAULT_BIND)]
    bind: String,
    /// Runs executing at once, across tenants; more wait in the queue, tenants in turn
    /// (also PRAXIS_MAX_RUNS; default 32; 0: unbounded).
    #[arg(long)]
    max_runs: Option<usize>,
    /// Runs executing at once per tenant (also PRAXIS_MAX_RUNS_PER_TENANT).
    #[arg(long)]
    max_runs_per_tenant: Option<usize>,
    /// Runs that may wait for a slot before creates get 429 (also PRAXIS_QUEUE; default 64).
    #[arg(long)]
    queue: Option<usize>,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create an API token for a tenant; prints only the token (store it: it is shown once).
    #[command(
        after_help = "Examples:\n  praxis token create --tenant acme > acme.token\n  curl -H \"Authorization: Bearer $(cat acme.token)\" http://127.0.0.1:3001/v1/runs\n\nOnly a SHA-256 of the token is kept (in $PRAXIS_HOME/ledger.db). Once a token exists,\n`praxis serve` requires one on every request except /health and /ready."
    )]
    Create {
        #[arg(long)]
        tenant: String,
    },
    /// List tokens (id = hash prefix, tenant, created).
    List,
    /// Revoke the token(s) whose id (hash prefix, 8+ hex digits) matches.
    Revoke { id: String },
}

pub async fn serve(home: &DataHome, args: ServeArgs) -> Result<ExitCode> {
    let mut config = praxis_server::ServerConfig::from_home(home.clone())?;
    // The tools of the home configuration's MCP servers, held by this process for its runs.
    let (registry, mcp) = praxis_mcp::client::tool_set_from_env(home).await?;
    for warning in mcp.warnings() {
        eprintln!("praxis serve: warning: {warning}");
    }
    config.registry = std::sync::Arc::new(registry);
    if let Some(n) = args.max_runs {
        config.max_runs = Some(n).filter(|n| *n > 0);
    }
    if let Some(n) = args.max_runs_per_tenant {
        config.max_runs_per_tenant = Some(n).filter(|n| *n > 0);
    }
    if let Some(n) = args.queue {
        config.queue_capacity = n;
    }
    let addr = praxis_server::parse_bind(&args.bind).map_err(|e| anyhow!(e))?;
    let problems = praxis_server::production_problems(&config)?;
    if !problems.is_empty() {
        eprintln!(
            "praxis serve: {}",
            praxis_server::ServerError::Production(problems)
        );
        return Ok(ExitCode::from(2));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let auth = match config.auth {
        praxis_server::AuthSetting::On => "on",
        praxis_server::AuthSetting::Off => "off",
        praxis_server::AuthSetting::Auto => "on once a token exists",
    };
    eprintln!(
        "praxis serve: listening on http://{local} (data {}, auth {auth}{})",
        home.root().display(),
        if config.production {
            ", production"
        } else {
            ""
        }
    );
    eprintln!(
        "praxis serve: workspaces accepted under {}{}",
        config.workspace_roots.describe(),
        if config.workspace_roots.explicit {
            ""
        } else {
            " (the directory the server was started in; set PRAXIS_WORKSPACE_ROOTS to choose)"
        }
    );
    praxis_server::serve(listener, config, praxis_server::stop_signal()).await?;
    eprintln!("praxis serve: stopped");
    Ok(ExitCode::SUCCESS)
}

pub fn token(home: &DataHome, cmd: TokenCmd) -> Result<ExitCode> {
    let store = home.token_store()?;
    match cmd {
        TokenCmd::Create { tenant } => {
            let token = store.create(&tenant)?;
            println!("{token}");
            eprintln!(
                "praxis: token for tenant {tenant} created (only its hash is stored; authentication is now on for `praxis serve`)"
            );
        }
        TokenCmd::List => {
            for t in store.list()? {
                println!("{}  {:<20}  {}", t.id, t.tenant, t.created_at);
            }
        }
        TokenCmd::Revoke { id } => {
            let n = store.revoke(&id)?;
            if n == 0 {
                bail!("no token with id {id:?} (use 8+ hex digits from `praxis token list`)");
            }
            println!("revoked {n} token(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
