//! Praxis HTTP server: REST under `/v1`, the live SSE feed of each run, API tokens mapped
//! to tenants, concurrency limits with a bounded queue, production-mode checks, graceful
//! shutdown and crash detection at start.
//!
//! The server runs nothing itself: runs go through `praxis_runtime::Runtime`, the ledger is
//! the truth for status and the feed, approvals meet in the same table `praxis approve`
//! uses, so the CLI and the server share one data directory.
//!
//! ```no_run
//! # async fn demo() -> Result<(), praxis_server::ServerError> {
//! let config = praxis_server::ServerConfig::new(praxis_runtime::DataHome::at("/var/lib/praxis"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let server = praxis_server::Server::start(listener, config).await?;
//! println!("listening on {}", server.addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

mod api;
mod audit;
pub mod bench;
mod cluster;
mod config;
mod executor;
mod history;
mod listen;
pub mod mcp;
mod metrics;
mod runs;
mod sse;
mod ui;

pub use api::{
    ApprovalList, ApprovalView, ApproveMode, CancelAnswer, CreateRun, Created, DEFAULT_TENANT,
    DecideApproval, DecisionAnswer, DecisionKind, ErrorBody, LimitsBody, ResumeRun, RunList,
    RunView, ToolList, ToolView, UsageView, VerifyWrit, WritVerdict, openapi_json,
};
pub use audit::{ChainVerdict, ChangedVerdictView, WhatIf, WhatIfAnswer};
pub use config::{
    AuthSetting, DEFAULT_BIND, ServerConfig, WorkspaceRoots, WritSource, parse_bind, parse_origins,
};
pub use executor::{ExecutorSetting, KubeSettings, SeccompSetting};
pub use history::{BranchRun, Branched, WorldDiff, WorldView};
pub use ui::{API_CSP, CONSOLE_CSP, Session};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// The reason recorded in `run_finished` of runs cancelled by a shutdown.
pub const SHUTDOWN_REASON: &str = "server shutting down";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("refusing to start in production mode (PRAXIS_MODE=production):\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Production(Vec<String>),
    #[error("opening the data directory: {0}")]
    Ledger(#[from] praxis_ledger::LedgerError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Home(#[from] praxis_runtime::home::HomeError),
    #[error("the server task failed: {0}")]
    Task(String),
}

/// Every production-mode refusal for `config` (empty when it may start, or when not in
/// production mode).
pub fn production_problems(config: &ServerConfig) -> Result<Vec<String>, ServerError> {
    if !config.production {
        return Ok(Vec::new());
    }
    let tokens = config.home.token_store()?;
    let auth_on = api::auth_on(config.auth, &tokens)?;
    Ok(config.production_problems(auth_on, &praxis_runtime::doctor::sandbox_features()))
}

/// Serves until `shutdown` resolves, then stops accepting, cancels running runs (their
/// `run_finished` says [`SHUTDOWN_REASON`]), waits for them (at most the configured grace)
/// and returns.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let problems = production_problems(&config)?;
    if !problems.is_empty() {
        return Err(ServerError::Production(problems));
    }
    // Worker processes started ahead of the runs that claim them (one run at a time, kept
    // for the next run of the same workspace and settings unless `worker_reuse` is off), and
    // the host facts each worker is handed, computed once for the server.
    praxis_tools::worker::set_reuse(config.worker_reuse);
    tokio::task::spawn_blocking(|| {
        praxis_tools::fabric::keep_default_workers_warm(praxis_tools::fabric::WARM_WORKERS)
    });
    // The data dir's SQLite ledger, or the PostgreSQL one several servers share.
    let stores = cluster::Stores::open(&config)?;
    if let Some(why) = executor::refusal(&config.executor, stores.cluster.is_some()) {
        return Err(ServerError::Config(why));
    }
    let metrics = Arc::new(metrics::Metrics::default());
    let manager = runs::Manager::new(
        &stores,
        config.home.clone(),
        config.registry.clone(),
        metrics.clone(),
        runs::Limits {
            max_runs: config.max_runs,
            max_runs_per_tenant: config.max_runs_per_tenant,
            max_runs_per_provider: config.max_runs_per_provider,
            queue_capacity: config.queue_capacity,
            follower_buffer: config.follower_buffer,
        },
    );
    #[cfg(feature = "kubernetes")]
    if let executor::ExecutorSetting::Kubernetes(settings) = &config.executor {
        let kube = executor::kube::KubeExecutor::connect(
            (**settings).clone(),
            stores.ledger.clone(),
            config.poll_interval,
        )
        .await
        .map_err(ServerError::Config)?;
        manager.set_executor(Arc::new(kube));
    }
    let grace = config.shutdown_grace;
    let bounds = listen::Bounds {
        header_read_timeout: config.header_read_timeout,
        max_unauthenticated: config.max_unauthenticated,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = Arc::new(api::Shared {
        manager: manager.clone(),
        approvals: stores.approvals.clone(),
        tokens: stores.tokens.clone(),
        metrics,
        config,
        shutdown: stop_rx.clone(),
    });
    let scan = manager.clone();
    // On a shared ledger, runs change hands through their leases (`cluster`), not by a
    // scan at start: another server may be driving them.
    let interrupted = match &stores.cluster {
        Some(_) => Vec::new(),
        None => tokio::task::spawn_blocking(move || runs::interrupted_runs(&scan))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??,
    };
    if let Some(shared) = stores.cluster.clone() {
        cluster::spawn(state.clone(), shared);
    }
    for row in &interrupted {
        // Resumed runs wait for a person before re-running anything in flight.
        // No writ is sent, so the tenant is not consulted.
        let owner = api::Tenant(DEFAULT_TENANT.into());
        runs::recover_run(&manager, row, &|spec| {
            state
                .resume_options(spec, &owner, &api::ResumeRun::default())
                .ok()
        });
    }
    // Runs answered 201 whose server died before their first entry start now, under the
    // ids their clients hold. On a shared ledger they change hands through their leases
    // (`cluster::take_over_accepted`), like interrupted runs.
    if stores.cluster.is_none() {
        let scan = manager.clone();
        let accepted = tokio::task::spawn_blocking(move || runs::accepted_never_started(&scan))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        for run in &accepted {
            let note = state.start_accepted(run);
            eprintln!("praxis serve: run {}: {note}", run.run_id);
            manager.note_recovered(&run.run_id, note);
        }
    }
    let app = api::router(state);
    let server = listen::serve(listener, app, bounds, stop_rx.clone());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = shutdown => {
            // Feeds end, new connections are refused, runs are cancelled, then we wait
            // for open connections, bounded: a client that never reads must not keep the
            // server from exiting.
            let _ = stop_tx.send(true);
            let left = manager.shutdown(SHUTDOWN_REASON, grace).await;
            if left > 0 {
                eprintln!("praxis serve: {left} run(s) did not stop within {}s", grace.as_secs());
            }
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                eprintln!("praxis serve: closing connections still open after {}s", grace.as_secs());
            }
        }
    }
    Ok(())
}

/// A server running in the background of this process (tests, benchmarks, embedding).
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Server {
    /// Starts serving on `listener`; production-mode problems are reported here.
    pub async fn start(listener: TcpListener, config: ServerConfig) -> Result<Server, ServerError> {
        let problems = production_problems(&config)?;
        if !problems.is_empty() {
            return Err(ServerError::Production(problems));
        }
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(Server {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?
    }
}

/// Resolves on SIGTERM or ctrl-c (what `praxis serve` stops on).
pub async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
