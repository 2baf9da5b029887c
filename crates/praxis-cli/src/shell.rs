//! `praxis shell`: an interactive session against a server (`--server`/`PRAXIS_SERVER`,
//! token from `PRAXIS_TOKEN`) or this data directory. Each line is one command, parsed like
//! the `praxis` subcommand of the same name; the work is done by the functions the
//! subcommands use (remote.rs, governance.rs, launch.rs).
//!
//! On a terminal: line editing, history in `$PRAXIS_HOME/shell_history`, tab completion of
//! command names and recent run ids. Otherwise commands are read line by line from stdin
//! (no prompt), so a session can be scripted; the exit code is then 1 if any command failed.

use crate::remote::{self, Remote};
use crate::{RunArgs, governance, launch, present};
use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use praxis_core::Record;
use praxis_core::record::RunFinished;
use praxis_ledger::Entry;
use praxis_runtime::DataHome;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;

#[derive(Args)]
pub struct ShellArgs {
    /// Drive runs on this server (also PRAXIS_SERVER; token from PRAXIS_TOKEN). Without it,
    /// runs are local (in this process, on $PRAXIS_HOME).
    #[arg(long, env = "PRAXIS_SERVER")]
    server: Option<String>,
}

/// One line of the shell.
#[derive(Parser)]
#[command(
    name = "praxis shell",
    about = "Commands of `praxis shell`, one per line:",
    no_binary_name = true,
    disable_version_flag = true,
    override_usage = "COMMAND [ARGS]   (`help COMMAND` for its flags)",
    after_help = "A run id may be a unique prefix locally, or `last`: the run this session saw last.\nTab completes commands and recent run ids. Ctrl-C stops following (the run goes on);\nCtrl-D or `exit` leaves."
)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a run (every `praxis run` flag works) and follow it until it ends or waits
    /// for an approval.
    Run {
        /// Submit and return at once, without following (server only).
        #[arg(long, short = 'd')]
        detach: bool,
        #[command(flatten)]
        args: Box<RunArgs>,
    },
    /// Follow a run's entries until it ends or waits for an approval.
    Follow { run: String },
    /// List runs, newest first.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A run's status, phase and counters.
    Status { run: String },
    /// Proposals waiting for a decision.
    Approvals,
    /// Approve the pending proposal of a run.
    Approve {
        run: String,
        /// Why (recorded).
        reason: Vec<String>,
    },
    /// Deny the pending proposal of a run; the model sees the reason.
    Deny {
        run: String,
        /// Why (recorded, and shown to the model).
        #[arg(required = true)]
        reason: Vec<String>,
    },
    /// Cancel a run (server only: a local run is cancelled with Ctrl-C).
    Cancel { run: String },
    /// Leave the shell.
    #[command(alias = "quit")]
    Exit,
}

/// Command names, for completion (`help` is clap's).
const COMMANDS: &[&str] = &[
    "run",
    "follow",
    "runs",
    "status",
    "approvals",
    "approve",
    "deny",
    "cancel",
    "help",
    "exit",
    "quit",
];

/// Commands whose first argument is a run id.
const TAKES_RUN: &[&str] = &["follow", "status", "approve", "deny", "cancel"];

/// How many run ids completion remembers.
const RECENT: usize = 64;

pub async fn shell(home: &DataHome, args: ShellArgs) -> Result<ExitCode> {
    let server = match args.server.map(|s| s.trim().to_string()) {
        Some(s) if s.is_empty() => None,
        Some(s) => {
            // Refuse a malformed URL now rather than at every command.
            Remote::new(&s)?;
            Some(s)
        }
        None => None,
    };
    let session = Session {
        home: home.clone(),
        server,
        recent: Arc::new(Mutex::new(Vec::new())),
    };
    session.refresh_recent().await;
    let interactive = std::io::stdin().is_terminal();
    let mut input = if interactive {
        let path = home.root().join("shell_history");
        Input::editor(path, session.recent.clone())?
    } else {
        Input::Lines(std::io::stdin().lock().lines())
    };
    if interactive {
        match &session.server {
            Some(server) => println!("praxis shell on {server} (`help` lists the commands)"),
            None => println!(
                "praxis shell on {} (local; `help` lists the commands)",
                home.root().display()
            ),
        }
    }
    let mut failed = false;
    // Reading blocks: keep it off the runtime's async workers.
    while let Some(line) = tokio::task::block_in_place(|| input.next_line()) {
        let line = line?;
        let words = match split_words(&line) {
            Ok(words) => words,
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
                continue;
            }
        };
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let words = join_task_words(words);
        let command = match Line::try_parse_from(&words) {
            Ok(line) => line.command,
            Err(e) => {
                let is_error = e.use_stderr();
                // Help and usage text, or the parse error naming the input.
                let _ = e.print();
                failed |= is_error;
                continue;
            }
        };
        if matches!(command, Command::Exit) {
            break;
        }
        if let Err(e) = session.execute(command).await {
            eprintln!("error: {e:#}");
            failed = true;
        }
        let _ = std::io::stdout().flush();
    }
    Ok(if failed && !interactive {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

// ---------------------------------------------------------------------------------------
// Input

enum Input {
    Editor {
        editor: Box<rustyline::Editor<Completion, rustyline::history::DefaultHistory>>,
        history: PathBuf,
    },
    Lines(std::io::Lines<std::io::StdinLock<'static>>),
}

impl Input {
    fn editor(history: PathBuf, recent: Arc<Mutex<Vec<String>>>) -> Result<Input> {
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .max_history_size(1000)
            .context("configuring the line editor")?
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut editor = rustyline::Editor::with_config(config)
            .context("starting the line editor on this terminal")?;
        editor.set_helper(Some(Completion { recent }));
        match editor.load_history(&history) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "praxis: warning: history {} not loaded: {e}",
                history.display()
            ),
        }
        Ok(Input::Editor {
            editor: Box::new(editor),
            history,
        })
    }

    /// The next line; None at the end of input.
    fn next_line(&mut self) -> Option<Result<String>> {
        match self {
            Input::Lines(lines) => lines
                .next()
                .map(|l| l.context("reading a command from stdin")),
            Input::Editor { editor, history } => match editor.readline("praxis> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                        // Saved at once, so a session that is killed keeps its history.
                        if let Err(e) = editor.save_history(history) {
                            eprintln!(
                                "praxis: warning: history not saved to {}: {e}",
                                history.display()
                            );
                        }
                    }
                    Some(Ok(line))
                }
                // Ctrl-C at the prompt drops the line, as in a shell.
                Err(ReadlineError::Interrupted) => Some(Ok(String::new())),
                Err(ReadlineError::Eof) => None,
                Err(e) => Some(Err(e).context("reading a command")),
            },
        }
    }
}

/// Tab completion: command names, then recent run ids for commands that take one.
struct Completion {
    recent: Arc<Mutex<Vec<String>>>,
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(complete(line, pos, &recent))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl rustyline::Helper for Completion {}

/// Where the word under the cursor starts, and what it may become.
fn complete(line: &str, pos: usize, recent: &[String]) -> (usize, Vec<String>) {
    let before = line.get(..pos).unwrap_or(line);
    let start = before.rfind(char::is_whitespace).map_or(0, |i| {
        i + before[i..].chars().next().map_or(1, char::len_utf8)
    });
    let word = &before[start..];
    let previous: Vec<&str> = before[..start].split_whitespace().collect();
    let candidates: Vec<String> = match previous.as_slice() {
        [] => COMMANDS
            .iter()
            .filter(|c| c.starts_with(word))
            .map(|c| c.to_string())
            .collect(),
        [command] if TAKES_RUN.contains(command) => recent
            .iter()
            .map(String::as_str)
            .chain(["last"])
            .filter(|id| id.starts_with(word))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    (start, candidates)
}

/// Splits a command line into words: whitespace separates, '...' is literal, "..." allows
/// \" and \\, a backslash outside quotes escapes the next character.
/// `run Fix the failing test --provider mock` -> `run "Fix the failing test" --provider mock`:
/// the words of a `run` line that are neither flags nor their values form the task.
fn join_task_words(words: Vec<String>) -> Vec<String> {
    if words.first().map(String::as_str) != Some("run") {
        return words;
    }
    let command = <Line as clap::CommandFactory>::command();
    let Some(run) = command.find_subcommand("run") else {
        return words;
    };
    let takes_value = |word: &str| {
        if word.contains('=') {
            return false;
        }
        run.get_arguments().any(|arg| {
            let named = match word.strip_prefix("--") {
                Some(long) => arg.get_long() == Some(long),
                None => {
                    let mut chars = word[1..].chars();
                    chars.next().is_some_and(|c| arg.get_short() == Some(c))
                        && chars.as_str().is_empty()
                }
            };
            named && arg.get_action().takes_values()
        })
    };
    let mut out = vec![words[0].clone()];
    let mut task: Vec<String> = Vec::new();
    let mut task_at = None;
    let mut rest = words.into_iter().skip(1);
    while let Some(word) = rest.next() {
        if word == "--" {
            task_at.get_or_insert(out.len());
            task.extend(rest.by_ref());
            break;
        }
        if word.len() > 1 && word.starts_with('-') {
            let value = takes_value(&word).then(|| rest.next()).flatten();
            out.push(word);
            out.extend(value);
        } else {
            task_at.get_or_insert(out.len());
            task.push(word);
        }
    }
    if let Some(at) = task_at {
        out.insert(at, task.join(" "));
    }
    out
}

fn split_words(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => bail!("unterminated ' quote"),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => bail!("unterminated \" quote"),
                        },
                        Some(c) => w.push(c),
                        None => bail!("unterminated \" quote"),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => bail!("a line may not end with a backslash"),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

// ---------------------------------------------------------------------------------------
// Commands

struct Session {
    home: DataHome,
    server: Option<String>,
    /// Run ids this session saw, most recent first (completion and `last`).
    recent: Arc<Mutex<Vec<String>>>,
}

/// How following a run ended.
enum Followed {
    Finished(Box<RunFinished>),
    AwaitsApproval,
    Detached,
    /// The feed ended without `run_finished` (the run was refused, or its driver is gone).
    Ended,
}

impl Session {
    fn remember(&self, id: &str) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.retain(|r| r != id);
        recent.insert(0, id.to_string());
        recent.truncate(RECENT);
    }

    /// `last` is the run this session saw last.
    fn resolve(&self, run: &str) -> Result<String> {
        if run != "last" {
            return Ok(run.to_string());
        }
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        match recent.first() {
            Some(id) => Ok(id.clone()),
            None => bail!("no run yet in this session: `last` names the run this session saw last"),
        }
    }

    /// Loads the newest run ids for completion (quietly: the commands report errors).
    async fn refresh_recent(&self) {
        let ids: Vec<String> = match &self.server {
            Some(server) => {
                let Ok(remote) = Remote::new(server) else {
                    return;
                };
                match remote.get(&format!("/v1/runs?limit={RECENT}")).await {
                    Ok(list) => list["runs"]
                        .as_array()
                        .map(|runs| {
                            runs.iter()
                                .filter_map(|r| r["id"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    Err(_) => return,
                }
            }
            None => match crate::read_ledger(&self.home).and_then(|l| Ok(l.runs()?)) {
                Ok(rows) => rows.into_iter().take(RECENT).map(|r| r.run_id).collect(),
                Err(_) => return,
            },
        };
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids.into_iter().rev() {
            recent.retain(|r| *r != id);
            recent.insert(0, id);
        }
        recent.truncate(RECENT);
    }

    async fn execute(&self, command: Command) -> Result<()> {
        let server = self.server.as_deref();
        match command {
            Command::Run { detach, mut args } => {
                args.server = self.server.clone();
                match server {
                    Some(server) => {
                        let remote = Remote::new(server)?;
                        let (id, created) = remote::submit(&remote, &args).await?;
                        self.remember(&id);
                        println!(
                            "run {id} submitted ({})",
                            created["status"].as_str().unwrap_or("?")
                        );
                        if !detach {
                            self.follow(&id).await?;
                        }
                    }
                    None => {
                        if detach {
                            bail!(
                                "--detach needs a server: a local run runs in this shell until it ends"
                            );
                        }
                        if let Some(fabric) = args.fabric {
                            praxis_tools::fabric::set_default_fabric(fabric);
                        }
                        launch::run(&self.home, *args).await?;
                        // The run just recorded is the newest in the ledger.
                        if let Some(row) = crate::read_ledger(&self.home)?.runs()?.first() {
                            self.remember(&row.run_id);
                        }
                    }
                }
            }
            Command::Follow { run } => {
                let id = self.resolve(&run)?;
                self.follow(&id).await?;
            }
            Command::Runs { limit } => {
                match server {
                    Some(server) => remote::runs(server, false, limit).await?,
                    None => crate::runs(&self.home, false, limit)?,
                };
                self.refresh_recent().await;
            }
            Command::Status { run } => {
                let id = self.resolve(&run)?;
                remote::show_status(&self.home, &id, server, false).await?;
                self.remember(&id);
            }
            Command::Approvals => {
                match server {
                    Some(server) => remote::approvals(server, false).await?,
                    None => governance::list(&self.home, false)?,
                };
            }
            Command::Approve { run, reason } => {
                let id = self.resolve(&run)?;
                self.decide(&id, true, &reason.join(" ")).await?;
            }
            Command::Deny { run, reason } => {
                let id = self.resolve(&run)?;
                self.decide(&id, false, &reason.join(" ")).await?;
            }
            Command::Cancel { run } => {
                let id = self.resolve(&run)?;
                remote::cancel_run(&self.home, server, &id, None).await?;
            }
            Command::Exit => {}
        }
        Ok(())
    }

    async fn decide(&self, id: &str, approved: bool, reason: &str) -> Result<()> {
        match &self.server {
            Some(server) => remote::decide(server, id, None, approved, reason).await?,
            None => governance::decide(&self.home, id, None, approved, reason)?,
        };
        self.remember(id);
        Ok(())
    }

    /// Prints a run's entries until it ends, waits for an approval (left to the user), or
    /// Ctrl-C (the run goes on).
    async fn follow(&self, id: &str) -> Result<()> {
        self.remember(id);
        let (approvals, mut asked) = mpsc::unbounded_channel::<u64>();
        let mut finished: Option<RunFinished> = None;
        let print = |entry: &Entry| {
            if let Some(line) = present::describe(entry, None) {
                println!("#{:<4} {line}", entry.seq);
            }
            match Record::from_entry(&entry.kind, &entry.payload) {
                Ok(Record::RunFinished(end)) => finished = Some(end),
                Ok(Record::ApprovalRequested(_)) => {
                    let _ = approvals.send(entry.seq);
                }
                _ => {}
            }
        };
        let outcome = match &self.server {
            Some(server) => {
                let remote = Remote::new(server)?;
                remote::run_path(id)?;
                let follow = remote.follow(id, print, |_| {});
                tokio::pin!(follow);
                loop {
                    tokio::select! {
                        result = &mut follow => {
                            result?;
                            break Followed::Ended;
                        }
                        Some(seq) = asked.recv() => {
                            if awaits_approval(&remote, id, seq).await? {
                                break Followed::AwaitsApproval;
                            }
                        }
                        _ = tokio::signal::ctrl_c() => break Followed::Detached,
                    }
                }
            }
            None => {
                let run_id = crate::read_ledger(&self.home)?.find_run(id)?;
                let follow = remote::follow_local(&self.home, &run_id, print);
                tokio::pin!(follow);
                tokio::select! {
                    result = &mut follow => {
                        result?;
                        Followed::Ended
                    }
                    _ = tokio::signal::ctrl_c() => Followed::Detached,
                }
            }
        };
        let outcome = match (outcome, finished) {
            (Followed::Ended, Some(end)) => Followed::Finished(Box::new(end)),
            (outcome, _) => outcome,
        };
        match outcome {
            Followed::Finished(end) => {
                let status = end.status.as_str();
                match Some(end.stop_reason.as_str()).filter(|r| *r != status) {
                    Some(reason) => println!("run {id} {status} ({reason})"),
                    None => println!("run {id} {status}"),
                }
                if let Some(answer) = &end.final_answer {
                    println!("{answer}");
                }
                if let Some(error) = &end.error {
                    println!("error: {error}");
                }
            }
            Followed::AwaitsApproval => println!(
                "run {id} awaits approval: `approve {id} [REASON]` or `deny {id} REASON`, then `follow {id}`"
            ),
            Followed::Detached => println!(
                "stopped following {id} (it goes on: `follow {id}` to watch again{})",
                if self.server.is_some() {
                    ", `cancel` to stop it"
                } else {
                    ""
                }
            ),
            Followed::Ended => {
                // No `run_finished` in the feed: the server's view says why.
                if let Some(server) = &self.server {
                    let view = Remote::new(server)?.get(&format!("/v1/runs/{id}")).await?;
                    println!(
                        "run {id} {}{}",
                        view["status"].as_str().unwrap_or("?"),
                        view["error"]
                            .as_str()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    );
                } else {
                    println!("run {id} is no longer running");
                }
            }
        }
        Ok(())
    }
}

/// Whether the run still waits for a decision on the request recorded at `seq` (a request
/// replayed by the feed may be decided already). The request reaches the approval list just
/// after its entry, and a decision reaches the ledger just after the list: until one of the
/// two settles it, ask again.
async fn awaits_approval(remote: &Remote, id: &str, seq: u64) -> Result<bool> {
    loop {
        let list = remote.get("/v1/approvals").await?;
        if list["approvals"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["run_id"] == id))
        {
            return Ok(true);
        }
        let view = remote.get(&remote::run_path(id)?).await?;
        if view["status"] != "awaiting_approval" || view["last_seq"].as_u64().unwrap_or(0) > seq {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests;
