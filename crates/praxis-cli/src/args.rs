//! The command line as clap parses it: every subcommand, flag and its help text. `main`
//! dispatches on these; nothing here runs anything.

use crate::{fanout, launch, mcp_serve, remote, serve, shell};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "praxis",
    version,
    about = "A governed execution runtime for LLM agents",
    long_about = "A model proposes work; Praxis owns authority. Every move flows Intent -> Proposal \
(policy-checked) -> Execution -> Outcome and is recorded in an append-only, hash-chained ledger \
($PRAXIS_HOME/ledger.db).",
    after_help = "Examples:\n  praxis run \"Summarize this repository\"\n  praxis runs\n  praxis show RUN_ID\n  praxis ledger verify --all\n\nEnvironment:\n  PRAXIS_HOME  data directory (default: the platform data dir, e.g. ~/.local/share/praxis)"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Issue, inspect, verify and attenuate signed writs.
    #[command(subcommand)]
    Writ(WritCmd),
    /// List proposals waiting for a human decision.
    #[command(after_help = "Examples:\n  praxis approvals\n  praxis approvals --json")]
    Approvals {
        #[arg(long)]
        json: bool,
        /// Ask this server instead of the local data directory (also PRAXIS_SERVER).
        #[arg(long, env = "PRAXIS_SERVER")]
        server: Option<String>,
    },
    /// Approve a suspended proposal of a run (from any terminal).
    #[command(
        after_help = "Examples:\n  praxis approve 01jd           # the run's only pending proposal\n  praxis approve 01jd c2        # a specific call\n\nThe decision, who made it ($PRAXIS_OPERATOR or $USER) and when are recorded in the run's ledger."
    )]
    Approve {
        /// Run id or a unique prefix.
        run: String,
        /// Call id of the proposal (needed when several are pending).
        call: Option<String>,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
        /// Decide through this server (also PRAXIS_SERVER).
        #[arg(long, env = "PRAXIS_SERVER")]
        server: Option<String>,
    },
    /// Deny a suspended proposal of a run; the model sees the denial and the reason.
    #[command(after_help = "Examples:\n  praxis deny 01jd --reason \"do not touch the lockfile\"")]
    Deny {
        /// Run id or a unique prefix.
        run: String,
        /// Call id of the proposal (needed when several are pending).
        call: Option<String>,
        /// Why (recorded, and shown to the model).
        #[arg(long)]
        reason: String,
        /// Decide through this server (also PRAXIS_SERVER).
        #[arg(long, env = "PRAXIS_SERVER")]
        server: Option<String>,
    },
    /// Run a task with an agent, governed and recorded.
    #[command(
        after_help = "Examples:\n  praxis run \"Summarize this repository\"\n  praxis run \"Fix the failing test\" --workspace ../app --provider scripted --script turns.json\n  praxis run \"Inspect\" --read-only --json\n\nProgress goes to stderr; the final answer (or --json summary) to stdout.\nExit code 0 only when the run completed."
    )]
    Run(RunArgs),
    /// Run every task of a file with every provider, bounded (see `praxis::fanout`).
    Fanout(fanout::FanoutArgs),
    /// List recorded runs, newest first.
    #[command(after_help = "Examples:\n  praxis runs\n  praxis runs --json --limit 5")]
    Runs {
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
        /// Show at most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// List the runs of this server (also PRAXIS_SERVER).
        #[arg(long, env = "PRAXIS_SERVER")]
        server: Option<String>,
    },
    /// Serve the HTTP API (REST under /v1, live SSE feeds) on this data directory.
    #[command(
        after_help = "Examples:\n  praxis serve\n  praxis serve --bind 0.0.0.0:3001 --max-runs 8 --max-runs-per-tenant 2\n\nEnvironment:\n  PRAXIS_BIND, PRAXIS_MAX_RUNS, PRAXIS_MAX_RUNS_PER_TENANT, PRAXIS_MAX_RUNS_PER_PROVIDER, PRAXIS_QUEUE\n  PRAXIS_AUTH (on|off|auto: on once a token exists)\n  PRAXIS_ALLOWED_ORIGINS (CORS, comma-separated)\n  PRAXIS_MODE=production (refuses unsafe settings, naming each)\nSIGTERM or ctrl-c: stop accepting, cancel running runs, exit 0."
    )]
    Serve(serve::ServeArgs),
    /// Praxis and the Model Context Protocol: `praxis mcp serve` offers the governed tools
    /// to MCP clients.
    #[command(subcommand)]
    Mcp(mcp_serve::McpCmd),
    /// Create, list and revoke API tokens (each maps to a tenant).
    #[command(subcommand)]
    Token(serve::TokenCmd),
    /// Follow a run's entries live until it ends (locally, or through --server).
    #[command(
        after_help = "Examples:\n  praxis follow 01jd\n  praxis follow 01JD... --server http://127.0.0.1:3001 --json"
    )]
    Follow(remote::FollowArgs),
    /// Show a run's status, phase and counters (locally, or through --server).
    #[command(after_help = "Examples:\n  praxis status 01jd --json")]
    Status(remote::StatusArgs),
    /// An interactive session: run, follow, runs, status, approvals, approve, deny, cancel
    /// (against --server, or locally).
    #[command(
        after_help = "Examples:\n  praxis shell --server http://127.0.0.1:3001\n  praxis shell < commands.txt      # one command per line; exit 1 if any failed\n\nHistory is kept in $PRAXIS_HOME/shell_history; Tab completes commands and recent run ids."
    )]
    Shell(shell::ShellArgs),
    /// Cancel a run, driven locally or on a server (it records run_finished with status
    /// cancelled, the reason and who asked).
    #[command(after_help = "Examples:\n  praxis cancel 01JD... --server http://127.0.0.1:3001")]
    Cancel(remote::CancelArgs),
    /// Show a run's trajectory, entry by entry.
    #[command(
        after_help = "Examples:\n  praxis show 01jd      # a unique prefix of the run id is enough\n  praxis show 01jd --json"
    )]
    Show {
        /// Run id or a unique prefix of it.
        run: String,
        /// Print the overview and entries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-drive a run's kernel from its record and check it reproduces every entry.
    #[command(
        after_help = "Examples:\n  praxis replay 01jd\n  praxis replay 01jd --json\n\nNo model is called and no tool runs: the recorded replies and observations are fed\nback to a fresh kernel (with the built-in tools' contracts), whose records must equal the\nledger's, kind and hash. Exit 0 when they match (an interrupted run matches as\n\"unfinished\"); exit 1 printing the first divergence."
    )]
    Replay {
        /// Run id or a unique prefix.
        run: String,
        /// Print the report as one JSON object {status, run_id, ...}.
        #[arg(long)]
        json: bool,
    },
    /// Show the effective configuration and where each value came from.
    #[command(
        after_help = "Examples:\n  praxis config\n  praxis config --workspace . --json\n\nLayers, later wins: defaults < $PRAXIS_HOME/praxis.toml < WORKSPACE/praxis.toml <\nenvironment (PRAXIS_PROVIDER, PRAXIS_PROTOCOL, OPENAI_BASE_URL, ANTHROPIC_BASE_URL,\nOLLAMA_HOST) < flags. A workspace file may not set [providers] or [prices]. API keys\n(OPENAI_API_KEY, ANTHROPIC_API_KEY) come from the environment only and are never printed."
    )]
    Config {
        /// Also read WORKSPACE/praxis.toml (as `praxis run` does for its workspace).
        #[arg(long, short = 'w')]
        workspace: Option<PathBuf>,
        /// Print {settings: [{key, value, source}], api_keys: {VAR: set}} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a new run from a past run's history at an entry, in a new workspace holding the
    /// files as they were then, and continue it live.
    #[command(
        after_help = "Examples:\n  praxis branch 01jd --at 12 --script other.json --json\n  praxis branch 01jd --at 12 --provider mock --task \"Try a smaller change\"\n  praxis branch 01jd --at 12 --writ stricter.writ --workspace /tmp/try2\n\nThe new run's history is the origin's up to the last model call at or before entry SEQ\n(linked by seq and hash, not copied); its workspace is the origin's world at that point,\nwritten into --workspace (default: $PRAXIS_HOME/workspaces/RUN_ID). The interrupted model\ncall is asked again of the branch's provider, with --task as an extra instruction.\nWithout --writ the branch acts under the origin's writ as recorded."
    )]
    Branch(launch::BranchArgs),
    /// Take over a run whose process died (crash, kill -9) and continue it.
    #[command(
        after_help = "Examples:\n  praxis resume 01jd\n  praxis resume 01jd --script turns.json --approve never\n\nThe kernel is restored by replaying the run's record, then the run goes on in the same\nchain. A model call that was in flight is asked again. A tool call that was in flight is\nmarked interrupted and is NOT re-run silently: read-only tools run again, any other tool\nneeds approval (--approve). Only runs whose driver is gone (status `interrupted`) can be\nresumed."
    )]
    Resume {
        /// Run id or a unique prefix.
        run: String,
        /// Cognition to continue with (default: the provider the run was started with).
        #[arg(long, short = 'p')]
        provider: Option<String>,
        /// Script file, for a run started with the scripted provider (scripts are not recorded).
        #[arg(long)]
        script: Option<PathBuf>,
        /// Writ token file to continue under (default: the writ recorded at run start).
        #[arg(long)]
        writ: Option<PathBuf>,
        /// Who answers proposals that need approval, including re-running an interrupted call.
        #[arg(long, value_enum, default_value_t = ApproveMode::Ask)]
        approve: ApproveMode,
        /// Print one JSON object as `praxis run --json` does.
        #[arg(long)]
        json: bool,
    },
    /// Show the workspace as a run left it at an entry, rebuilt from the ledger alone.
    #[command(
        after_help = "Examples:\n  praxis world 01jd                      # files the run changed (deleted ones marked)\n  praxis world 01jd --at 7 --path src/main.rs\n  praxis world 01jd --diff               # unified diff: run start vs the end\n  praxis world 01jd --at 7 --diff        # run start vs after entry 7\n\n--diff always compares the run's start state with the state after SEQ.\n--path exits 1 when the file did not exist at that point."
    )]
    World {
        /// Run id or a unique prefix.
        run: String,
        /// The state after this entry (default: the run's last entry).
        #[arg(long, value_name = "SEQ")]
        at: Option<u64>,
        /// Print this file's content (path relative to the workspace).
        #[arg(long, value_name = "P", conflicts_with = "diff")]
        path: Option<String>,
        /// Print a unified diff of the changed files between the run's start and SEQ.
        #[arg(long)]
        diff: bool,
    },
    /// Export or verify the hash-chained ledger.
    #[command(subcommand)]
    Ledger(LedgerCmd),
    /// Ask what a different writ would have decided on a recorded run.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Compare two runs: where their trajectories part, and how their final worlds differ.
    #[command(
        after_help = "Examples:\n  praxis diff 01jd 01je\n  praxis diff 01jd 01je --json\n\nA step is one model reply with its proposals; steps are the same when their tool calls,\narguments, verdicts and execution status are. Final worlds are rebuilt from the ledger\n(`--- a/P` is run A, `+++ b/P` run B). Exit 0 whether or not the runs differ."
    )]
    Diff {
        /// Run id (or unique prefix) of run A.
        run_a: String,
        /// Run id (or unique prefix) of run B.
        run_b: String,
        /// Print one JSON object {common_prefix, divergence, rest_a, rest_b, files, ...}.
        #[arg(long)]
        json: bool,
    },
    /// Check the data directory, the ledger, and what sandboxing this host offers.
    #[command(after_help = "Examples:\n  praxis doctor\n  PRAXIS_HOME=/tmp/p praxis doctor --json")]
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// List the tools a run can call: effect, source and argument schema.
    #[command(
        after_help = "Examples:\n  praxis tools\n  praxis tools --json | jq '.[] | select(.effect == \"write\") | .name'"
    )]
    Tools {
        /// Print a JSON array of {name, effect, source, description, input_schema}.
        #[arg(long)]
        json: bool,
    },
    /// Run one objective configured by the environment alone (the Kubernetes Job contract).
    #[command(
        after_help = "Examples:\n  THOUGHTMESH_MODEL_CONFIG='{\"provider\":\"mock\",\"name\":\"mock\"}' \\\n  THOUGHTMESH_OBJECTIVE='Summarize this repository' \\\n  THOUGHTMESH_KEY_RESULTS='[\"The summary names the README\", {\"text\":\"a README exists\",\"check\":\"test -f README.md\"}]' \\\n  praxis job\n\nEnvironment (THOUGHTMESH_X or PRAXIS_X):\n  MODEL_CONFIG  {provider: mock|scripted|openai|anthropic|ollama, name, api_key?, base_url?}\n  OBJECTIVE     what to achieve (required)\n  KEY_RESULTS   JSON array of strings or {text, check}; a check runs in the sandbox (exit 0: met),\n                the others are judged by a critic model call from the run's ledger\n  TOOLS         JSON array of {name, config?}: the tools the run may use; config narrows paths,\n                mode, allow_commands, deny_commands, allow_env, hosts as a writ block does\n  PRAXIS_WRIT   token text or file (default: a development writ); PRAXIS_WORKSPACE (default: cwd)\n\nPrints one JSON report on stdout. Exit 0: the run completed and every key result is met;\n1: not achieved (or cancelled: SIGTERM cancels, records and exits); 2: bad configuration."
    )]
    Job,
    /// The sandboxed tool worker (started by the runtime; framed JSON on stdin/stdout).
    #[command(hide = true)]
    Worker {
        /// Fork a worker for each request of the runtime instead (its pool's fork server).
        #[arg(long)]
        fork_server: bool,
    },
    /// Measure the runtime's overheads against baselines taken in the same run.
    #[command(
        after_help = "Examples:\n  praxis bench\n  praxis bench --quick --json\n\nThe ledger benchmarks fsync: run on a real disk (default: under $PRAXIS_HOME)."
    )]
    Bench {
        #[arg(long)]
        json: bool,
        /// Fewer iterations: faster, noisier.
        #[arg(long)]
        quick: bool,
        /// Directory for the benchmark's temporary ledgers and workspace.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Load-test the HTTP server instead (loopback, in-process): concurrent mock runs
        /// with SSE followers; runs/s, delivery latency p50/p99, peak RSS.
        #[arg(long)]
        server: bool,
        /// With --server: concurrent runs.
        #[arg(long, default_value_t = 20, requires = "server")]
        runs: usize,
        /// With --server: SSE followers per run.
        #[arg(long, default_value_t = 4, requires = "server")]
        followers: usize,
    },
}

#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
    /// Re-judge every recorded proposal of a run under another writ (nothing is executed)
    /// and list the verdicts that would change.
    #[command(
        after_help = "Examples:\n  praxis policy check 01jd --writ strict.writ\n  praxis policy check 01jd --writ strict.writ --json\n\nThe writ is verified like `praxis run --writ` does (trust anchor, valid now); its\ntime-window and budget checks are evaluated at each proposal's recorded time, with what\nthe run had consumed just before it. The run's own policy (tools, read-only,\nconfinement) still applies. --json prints a list of {seq, tool, before, after, reason}.\nExit 0 whether or not verdicts change."
    )]
    Check {
        /// Run id or a unique prefix.
        run: String,
        /// Writ token file to judge the run's proposals under.
        #[arg(long)]
        writ: PathBuf,
        /// Print a JSON list of {seq, tool, before, after, reason}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum WritCmd {
    /// Create the issuer key pair in $PRAXIS_HOME/keys (issuer.key 0600; issuer.pub is the trust anchor).
    #[command(
        after_help = "Examples:\n  praxis writ keygen\n  praxis writ keygen --force   # replace an existing key (old writs stop verifying)"
    )]
    Keygen {
        /// Overwrite an existing key pair.
        #[arg(long)]
        force: bool,
    },
    /// Compile a writ spec (TOML or JSON) into a signed token, printed on stdout.
    #[command(after_help = "Examples:\n  praxis writ issue --spec agent.toml > agent.writ")]
    Issue {
        #[arg(long)]
        spec: PathBuf,
    },
    /// Print a writ's blocks back as readable specs (no key needed).
    #[command(after_help = "Examples:\n  praxis writ inspect agent.writ")]
    Inspect {
        /// A token file, or the token text.
        token: String,
    },
    /// Exit 0 only if the writ is valid: signed by the trust anchor, untampered, within its time window.
    #[command(
        after_help = "Examples:\n  praxis writ verify agent.writ\n  PRAXIS_TRUST_ANCHOR=ISSUER_PUB_HEX praxis writ verify agent.writ"
    )]
    Verify {
        /// A token file, or the token text.
        token: String,
    },
    /// Append a narrower block; refuses, naming the field, anything that would widen.
    #[command(
        after_help = "Examples:\n  praxis writ attenuate agent.writ --spec readonly.toml > child.writ"
    )]
    Attenuate {
        /// A token file, or the token text.
        token: String,
        #[arg(long)]
        spec: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum LedgerCmd {
    /// Print a run's entries as JSON lines (run_id, seq, kind, at, prev_hash, hash, payload).
    #[command(after_help = "Examples:\n  praxis ledger export 01jd > run.jsonl")]
    Export {
        /// Run id or a unique prefix.
        run: String,
    },
    /// Check hash chains; exit 1 naming the run and the first bad seq if any is broken.
    /// With --export, verify an exported file offline against the runtime's public key.
    #[command(
        after_help = "Examples:\n  praxis ledger verify 01jd\n  praxis ledger verify --all\n  praxis ledger verify --export run.jsonl --key runtime.pub"
    )]
    Verify {
        /// Run id or a unique prefix.
        #[arg(required_unless_present_any = ["all", "export"], conflicts_with = "all")]
        run: Option<String>,
        /// Verify every run, and every stored blob.
        #[arg(long)]
        all: bool,
        /// A JSON-lines export (`praxis ledger export`) to verify offline: every chain, every
        /// signed checkpoint, and that each run ends with one.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["run", "all"], requires = "key")]
        export: Option<PathBuf>,
        /// The runtime's checkpoint public key: hex, or a file holding it (`praxis ledger key`).
        #[arg(long, value_name = "PUB", requires = "export")]
        key: Option<String>,
    },
    /// Print the runtime's checkpoint public key (hex), generating the key pair if needed.
    #[command(after_help = "Examples:\n  praxis ledger key > runtime.pub")]
    Key,
    /// Bring the ledger's schema up to date: the data dir's SQLite file, or the PostgreSQL
    /// database PRAXIS_LEDGER_URL names.
    #[command(
        after_help = "Examples:\n  praxis ledger migrate\n  PRAXIS_LEDGER_URL=postgres://praxis@127.0.0.1/praxis praxis ledger migrate"
    )]
    Migrate,
    /// Copy between the data dir's SQLite ledger and PostgreSQL, either way: every run,
    /// blob, API token, run owner and waiting approval request the target lacks; every
    /// copied chain is verified there. Running it again copies nothing.
    #[command(
        after_help = "Examples:\n  praxis ledger copy --to postgres://praxis@127.0.0.1/praxis\n  praxis ledger copy --from postgres://praxis@127.0.0.1/praxis"
    )]
    Copy {
        /// Copy the data dir's SQLite ledger into this database (a postgres:// URL).
        #[arg(
            long,
            value_name = "URL",
            required_unless_present = "from",
            conflicts_with = "from"
        )]
        to: Option<String>,
        /// Copy this database (a postgres:// URL) into the data dir's SQLite ledger.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
    },
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// What the agent should do.
    pub(crate) task: String,
    /// Workspace directory the agent works in (default: the current directory).
    #[arg(long, short = 'w')]
    pub(crate) workspace: Option<PathBuf>,
    /// Cognition: `mock` (default; no key needed), `scripted` (replays --script),
    /// `openai:MODEL`, `anthropic:MODEL`, `ollama:MODEL`, a tier name from praxis.toml
    /// `[models]`, or a comma-separated failover list. Also PRAXIS_PROVIDER.
    #[arg(long, short = 'p')]
    pub(crate) provider: Option<String>,
    /// Model for a provider given without one (`--provider openai --model gpt-4.1-mini`).
    #[arg(long, short = 'm')]
    pub(crate) model: Option<String>,
    /// How the model acts: `tools` (native tool calls) or `cmd` (<cmd> text blocks, for
    /// models without tool calling). Also PRAXIS_PROTOCOL.
    #[arg(long)]
    pub(crate) protocol: Option<String>,
    /// `auto`, `required` or a tool name: force a tool call in the FIRST model call (later
    /// calls are auto so the model can finish).
    #[arg(long)]
    pub(crate) tool_choice: Option<String>,
    /// Script file for the scripted provider: {"turns": [{"content": ..., "tool_calls": [...]}]}.
    #[arg(long)]
    pub(crate) script: Option<PathBuf>,
    /// Maximum model calls (default: praxis.toml [limits] max_steps, else 30).
    #[arg(long)]
    pub(crate) max_steps: Option<u32>,
    /// Wall-clock limit for the whole run, in seconds (default: [limits] max_seconds, else 1800).
    #[arg(long)]
    pub(crate) max_seconds: Option<u64>,
    /// Deny every proposal with an effect above read.
    #[arg(long)]
    pub(crate) read_only: bool,
    /// Writ token file the run acts under (default: a development writ issued with the local key).
    #[arg(long)]
    pub(crate) writ: Option<PathBuf>,
    /// Comma-separated tool allowlist (default: every built-in tool).
    #[arg(long, value_delimiter = ',')]
    pub(crate) tools: Option<Vec<String>>,
    /// Print one JSON object {run_id, status, stop_reason, final_answer, steps, usage} on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Who answers proposals that need approval: `ask` (prompt on a terminal, else wait for
    /// `praxis approve`/`deny` from another terminal), `auto` (approve all), `never` (deny all).
    #[arg(long, value_enum, default_value_t = ApproveMode::Ask)]
    pub(crate) approve: ApproveMode,
    /// Submit to this server and follow the run there (also PRAXIS_SERVER; token from
    /// PRAXIS_TOKEN).
    #[arg(long, env = "PRAXIS_SERVER")]
    pub(crate) server: Option<String>,
    /// Where shell, test_run, fs_write, fs_patch and http run: `worker` (a sandboxed
    /// `praxis worker` process), `in-process`, or `auto` (worker where the host supports the
    /// sandbox). Also PRAXIS_FABRIC.
    #[arg(long, value_name = "FABRIC")]
    pub(crate) fabric: Option<praxis_tools::FabricChoice>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ApproveMode {
    Ask,
    Auto,
    Never,
}
