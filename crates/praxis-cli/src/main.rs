//! The `praxis` command: argument parsing and presentation only; the work is in the libraries.

mod args;
mod cancel;
mod compare;
mod fanout;
mod governance;
mod history;
mod job;
mod launch;
mod ledger_admin;
mod mcp_serve;
mod present;
mod remote;
mod serve;
mod shell;
mod tools;
mod writs;

use anyhow::{Context, Result};
use args::*;
use clap::Parser;
use praxis_ledger::checkpoint::{self, CheckpointKey};
use praxis_ledger::{Ledger, VerifyReport};
use praxis_runtime::{DataHome, bench, doctor, overview};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if only_prints(&cli.command) {
        // It ends quietly when its reader goes away (`praxis show RUN | head`), as Unix
        // tools do, instead of panicking on the broken pipe. Commands that drive or serve
        // runs keep SIGPIPE ignored: a closed pipe must not kill a run halfway.
        // SAFETY: before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The worker makes its own runtime (a fork server must fork before any exists).
    if let Cmd::Worker { fork_server } = cli.command {
        return match praxis_tools::worker::run(fork_server) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("praxis worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("praxis: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("praxis: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Commands that only read and print.
fn only_prints(command: &Cmd) -> bool {
    matches!(
        command,
        Cmd::Approvals { .. }
            | Cmd::Runs { .. }
            | Cmd::Status(_)
            | Cmd::Show { .. }
            | Cmd::Replay { .. }
            | Cmd::Config { .. }
            | Cmd::World { .. }
            | Cmd::Diff { .. }
            | Cmd::Doctor { .. }
            | Cmd::Tools { .. }
            | Cmd::Policy(_)
            | Cmd::Ledger(LedgerCmd::Export { .. } | LedgerCmd::Verify { .. })
    )
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let home = DataHome::from_env()?;
    match cli.command {
        Cmd::Worker { .. } => unreachable!("`praxis worker` runs before the async runtime"),
        Cmd::Mcp(command) => mcp_serve::dispatch(&home, command).await,
        Cmd::Run(args) if args.server.is_none() => {
            if let Some(fabric) = args.fabric {
                praxis_tools::fabric::set_default_fabric(fabric);
            }
            if let Some(warning) =
                praxis_tools::fabric::host_warning(&praxis_tools::SandboxSettings::default())
            {
                eprintln!("praxis: warning: {warning}");
            }
            launch::run(&home, args).await
        }
        Cmd::Run(mut args) => match args.server.take() {
            Some(server) => remote::run(args, &server).await,
            None => launch::run(&home, args).await,
        },
        Cmd::Fanout(args) => fanout::fanout(&home, args).await,
        Cmd::Job => job::job(&home).await,
        Cmd::Serve(args) => serve::serve(&home, args).await,
        Cmd::Token(cmd) => serve::token(&home, cmd),
        Cmd::Follow(args) => remote::follow(&home, args).await,
        Cmd::Status(args) => remote::status(&home, args).await,
        Cmd::Shell(args) => shell::shell(&home, args).await,
        Cmd::Cancel(args) => remote::cancel(&home, args).await,
        Cmd::Approvals {
            json,
            server: Some(server),
        } => remote::approvals(&server, json).await,
        Cmd::Approve {
            run,
            call,
            reason,
            server: Some(server),
        } => remote::decide(&server, &run, call.as_deref(), true, &reason).await,
        Cmd::Deny {
            run,
            call,
            reason,
            server: Some(server),
        } => remote::decide(&server, &run, call.as_deref(), false, &reason).await,
        Cmd::Runs {
            json,
            limit,
            server: Some(server),
        } => remote::runs(&server, json, limit).await,
        Cmd::Writ(WritCmd::Keygen { force }) => writs::keygen(&home, force),
        Cmd::Writ(WritCmd::Issue { spec }) => writs::issue(&home, &spec),
        Cmd::Writ(WritCmd::Inspect { token }) => writs::inspect(&token),
        Cmd::Writ(WritCmd::Verify { token }) => writs::verify(&home, &token),
        Cmd::Writ(WritCmd::Attenuate { token, spec }) => writs::attenuate(&home, &token, &spec),
        Cmd::Approvals { json, .. } => governance::list(&home, json),
        Cmd::Approve {
            run, call, reason, ..
        } => governance::decide(&home, &run, call.as_deref(), true, &reason),
        Cmd::Deny {
            run, call, reason, ..
        } => governance::decide(&home, &run, call.as_deref(), false, &reason),
        Cmd::Runs { json, limit, .. } => runs(&home, json, limit),
        Cmd::Show { run, json } => show(&home, &run, json),
        Cmd::Replay { run, json } => history::replay(&home, &run, json),
        Cmd::Config { workspace, json } => launch::show_config(&home, workspace.as_deref(), json),
        Cmd::Branch(args) => launch::branch(&home, args).await,
        Cmd::Resume {
            run,
            provider,
            script,
            writ,
            approve,
            json,
        } => {
            let args = launch::ResumeArgs {
                run,
                provider,
                script,
                writ,
                approve,
                json,
            };
            launch::resume(&home, args).await
        }
        Cmd::World {
            run,
            at,
            path,
            diff,
        } => history::world(&home, &run, at, path.as_deref(), diff),
        Cmd::Policy(PolicyCmd::Check { run, writ, json }) => {
            compare::policy_check(&home, &run, &writ, json)
        }
        Cmd::Diff { run_a, run_b, json } => compare::diff(&home, &run_a, &run_b, json),
        Cmd::Ledger(LedgerCmd::Export { run }) => export(&home, &run),
        Cmd::Ledger(LedgerCmd::Verify {
            export: Some(file),
            key,
            ..
        }) => verify_export(&file, key.as_deref().unwrap_or_default()),
        Cmd::Ledger(LedgerCmd::Verify { run, all, .. }) => verify(&home, run.as_deref(), all),
        Cmd::Ledger(LedgerCmd::Migrate) => ledger_admin::migrate(&home),
        Cmd::Ledger(LedgerCmd::Copy { to, from }) => ledger_admin::copy(&home, to, from).await,
        Cmd::Ledger(LedgerCmd::Key) => {
            println!("{}", runtime_key(&home)?.public_hex());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Tools { json } => tools::tools(&home, json).await,
        Cmd::Doctor { json } => {
            let mut report = doctor::report(&home);
            // The MCP servers of the home configuration: started, named with their stderr
            // tail when they fail.
            if let Ok(mcp) = praxis_mcp::client::configured(&home, &|k| std::env::var(k).ok()) {
                let started = praxis_mcp::client::McpTools::start(&mcp, &home).await;
                report
                    .checks
                    .extend(praxis_mcp::client::doctor_checks(&started));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                present::doctor(&report);
            }
            Ok(if report.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Bench {
            json,
            dir,
            server: true,
            runs,
            followers,
            ..
        } => {
            let dir = dir.unwrap_or_else(|| home.root().join("bench"));
            eprintln!("praxis bench --server: {runs} runs, {followers} followers each (loopback)");
            let report =
                serde_json::to_value(praxis_server::bench::bench(&dir, runs, followers).await?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if let Some(map) = report.as_object() {
                for (k, v) in map {
                    println!("{k:<26} {v}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            json, quick, dir, ..
        } => {
            let dir = dir.unwrap_or_else(|| home.root().join("bench"));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating benchmark dir {}", dir.display()))?;
            eprintln!(
                "praxis bench: measuring in {} ({})",
                dir.display(),
                if quick { "quick" } else { "full" }
            );
            let report = bench::run_benchmarks(&dir, &bench::BenchOptions { quick }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The ledger for commands that only read it (SQLite or PostgreSQL, see
/// `DataHome::read_ledger`): never written through.
fn read_ledger(home: &DataHome) -> Result<Arc<dyn Ledger>> {
    Ok(home.read_ledger()?)
}

async fn wait_for_stop_signal() -> String {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted (SIGINT)".into(),
        _ = term.recv() => "terminated (SIGTERM)".into(),
    }
}

fn runs(home: &DataHome, json: bool, limit: usize) -> Result<ExitCode> {
    let ledger = read_ledger(home)?;
    let rows: Vec<_> = ledger.runs()?.iter().take(limit).map(overview).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        present::runs(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn show(home: &DataHome, run: &str, json: bool) -> Result<ExitCode> {
    let ledger = read_ledger(home)?;
    let run_id = ledger.find_run(run)?;
    let entries = ledger.entries(&run_id, 0)?;
    let row = ledger
        .runs()?
        .into_iter()
        .find(|r| r.run_id == run_id)
        .context("run vanished while reading")?;
    let overview = overview(&row);
    if json {
        println!(
            "{}",
            serde_json::json!({ "run": overview, "entries": entries })
        );
    } else {
        present::show(&overview, &entries);
    }
    Ok(ExitCode::SUCCESS)
}

fn export(home: &DataHome, run: &str) -> Result<ExitCode> {
    let ledger = read_ledger(home)?;
    let run_id = ledger.find_run(run)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for entry in ledger.entries(&run_id, 0)? {
        serde_json::to_writer(&mut out, &entry)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn verify(home: &DataHome, run: Option<&str>, all: bool) -> Result<ExitCode> {
    let ledger = read_ledger(home)?;
    let run_ids = if all {
        ledger.runs()?.into_iter().map(|r| r.run_id).collect()
    } else {
        vec![ledger.find_run(run.unwrap_or_default())?]
    };
    let mut broken = 0;
    for run_id in &run_ids {
        match ledger.verify_run(run_id)? {
            VerifyReport::Intact { entries } => println!("{run_id}: intact ({entries} entries)"),
            VerifyReport::Broken { seq, problem } => {
                broken += 1;
                println!("{run_id}: BROKEN at seq {seq}: {problem}");
            }
        }
    }
    if all {
        let bad_blobs = ledger.verify_blobs()?;
        for id in &bad_blobs {
            println!("blob {id}: BROKEN: content no longer matches its hash");
        }
        broken += bad_blobs.len();
        println!("{} runs checked, {broken} problems", run_ids.len());
    }
    if broken > 0 {
        bail_code(&format!("{broken} ledger integrity problem(s) found"))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// The runtime's checkpoint signing key: `$PRAXIS_HOME/keys/runtime.key`, generated (with
/// `runtime.pub`) on first use.
fn runtime_key(home: &DataHome) -> Result<CheckpointKey> {
    let (key, generated) = home.checkpoint_key()?;
    if generated {
        eprintln!(
            "praxis: generated the runtime checkpoint key in {} (runtime.pub verifies exports: `praxis ledger key`)",
            home.keys_dir().display()
        );
    }
    Ok(key)
}

/// `ledger verify --export FILE --key PUB`: needs nothing but the file and the public key.
fn verify_export(file: &Path, key: &str) -> Result<ExitCode> {
    let key_path = Path::new(key);
    let public_hex = if key_path.is_file() {
        std::fs::read_to_string(key_path)
            .with_context(|| format!("reading --key {}", key_path.display()))?
    } else {
        key.to_string()
    };
    checkpoint::parse_public_key(&public_hex).with_context(|| {
        format!("--key {key}: expected an Ed25519 public key in hex, or a file holding one")
    })?;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading --export {}", file.display()))?;
    let entries = match checkpoint::parse_export(&text) {
        Ok(entries) => entries,
        Err(e) => return bail_code(&format!("{}: {e}", file.display())),
    };
    let report = checkpoint::verify_export(&entries, &public_hex);
    for run in &report.runs {
        match &run.problem {
            None => println!(
                "{}: verified ({} entries, {} signed checkpoints)",
                run.run_id, run.entries, run.checkpoints
            ),
            Some(problem) => println!("{}: FAILED at {problem}", run.run_id),
        }
    }
    if report.runs.is_empty() {
        return bail_code(&format!("{}: the export holds no entries", file.display()));
    }
    let failed = report.runs.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        bail_code(&format!(
            "{failed} of {} run(s) in {} failed verification",
            report.runs.len(),
            file.display()
        ))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

fn bail_code(message: &str) -> Result<ExitCode> {
    eprintln!("praxis: {message}");
    Ok(ExitCode::FAILURE)
}
