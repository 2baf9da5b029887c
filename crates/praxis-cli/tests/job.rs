//! `praxis job` end to end, configured by environment variables only: the report on stdout,
//! exit 0 only when the run completed and every key result is met, 1 otherwise, 2 for a
//! refused configuration (naming the variable), and SIGTERM cancelling a run mid-call.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Praxis, text};

/// Every variable of the contract, removed so the developer's environment cannot leak in.
const CONTRACT: &[&str] = &[
    "THOUGHTMESH_MODEL_CONFIG",
    "THOUGHTMESH_OBJECTIVE",
    "THOUGHTMESH_KEY_RESULTS",
    "THOUGHTMESH_TOOLS",
    "PRAXIS_MODEL_CONFIG",
    "PRAXIS_OBJECTIVE",
    "PRAXIS_KEY_RESULTS",
    "PRAXIS_TOOLS",
    "PRAXIS_WRIT",
    "PRAXIS_WORKSPACE",
    "PRAXIS_PROVIDER",
    "PRAXIS_RUN_ID",
    "PRAXIS_LEDGER_URL",
];

const MOCK: &str = r#"{"provider": "mock", "name": "mock"}"#;

struct Job {
    praxis: Praxis,
    ws: tempfile::TempDir,
}

impl Job {
    fn new() -> Self {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(
            ws.path().join("README.md"),
            "# Tomlish\n\nA small parser for TOML configuration files.\n",
        )
        .unwrap();
        Job {
            praxis: Praxis::new(),
            ws,
        }
    }

    /// `praxis job` with exactly `vars` of the contract set (and the workspace).
    fn cmd(&self, vars: &[(&str, &str)]) -> Command {
        let mut cmd = self.praxis.cmd(&["job"]);
        for var in CONTRACT {
            cmd.env_remove(var);
        }
        cmd.env("PRAXIS_WORKSPACE", self.ws.path());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, vars: &[(&str, &str)]) -> Output {
        self.cmd(vars).output().unwrap()
    }
}

fn report_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): stdout {} stderr {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

#[test]
fn an_achieved_objective_exits_0_with_the_report() {
    let job = Job::new();
    let out = job.run(&[
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        ("THOUGHTMESH_OBJECTIVE", "Summarize this repository"),
        (
            "THOUGHTMESH_KEY_RESULTS",
            r#"["A summary of the README: a TOML parser", {"text": "the README is there", "check": "grep -q parser README.md"}]"#,
        ),
    ]);
    let report = report_of(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report:#} {}",
        text(&out.stderr)
    );
    assert_eq!(report["status"], "completed");
    assert_eq!(report["stop_reason"], "completed");
    assert_eq!(report["achieved"], true);
    assert!(report["final_answer"].as_str().unwrap().contains("TOML"));
    assert!(report["usage"]["run"]["input_tokens"].as_u64().unwrap() > 0);
    let [critic, check] = report["key_results"].as_array().unwrap().as_slice() else {
        panic!("{report:#}")
    };
    assert_eq!(critic["judged_by"], "critic");
    assert_eq!(critic["met"], true);
    // The critic's evidence is quoted from the ledger: each quote is in the entry it names.
    let run_id = report["run_id"].as_str().unwrap();
    let entries = job.praxis.entries(run_id);
    for quote in critic["evidence"].as_array().unwrap() {
        let seq = quote["seq"].as_u64().unwrap();
        let entry = entries.iter().find(|e| e["seq"] == seq).unwrap();
        assert!(
            entry["payload"].to_string().contains(
                serde_json::to_string(quote["quote"].as_str().unwrap())
                    .unwrap()
                    .trim_matches('"')
            ),
            "{quote} not in {entry}"
        );
    }
    assert_eq!(check["judged_by"], "check");
    assert_eq!(check["met"], true);
    assert!(report["usage"]["critic"]["input_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn a_failed_check_or_an_unshown_key_result_exits_1() {
    let job = Job::new();
    let out = job.run(&[
        ("PRAXIS_MODEL_CONFIG", MOCK),
        ("PRAXIS_OBJECTIVE", "Summarize this repository"),
        (
            "PRAXIS_KEY_RESULTS",
            r#"[{"text": "a changelog exists", "check": "test -f CHANGELOG.md"}]"#,
        ),
    ]);
    let report = report_of(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(report["status"], "completed");
    assert_eq!(report["achieved"], false);
    assert_eq!(report["key_results"][0]["met"], false);
    assert!(
        report["key_results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("exited 1"),
        "{report:#}"
    );

    // The critic does not say "met" for what the run never showed.
    let out = job.run(&[
        ("PRAXIS_MODEL_CONFIG", MOCK),
        ("PRAXIS_OBJECTIVE", "Summarize this repository"),
        (
            "PRAXIS_KEY_RESULTS",
            r#"["The Kubernetes operator was deployed to production"]"#,
        ),
    ]);
    let report = report_of(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(report["key_results"][0]["judged_by"], "critic");
    assert_eq!(report["key_results"][0]["met"], false);
    assert_eq!(report["key_results"][0]["evidence"], json!([]));
}

#[test]
fn a_refused_configuration_exits_2_naming_the_variable() {
    let job = Job::new();
    // (variables, the variable named, a piece of the problem)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("THOUGHTMESH_MODEL_CONFIG", MOCK)],
            "THOUGHTMESH_OBJECTIVE",
            "missing",
        ),
        (
            &[
                ("THOUGHTMESH_OBJECTIVE", "x"),
                ("THOUGHTMESH_MODEL_CONFIG", "{\"provider\": "),
            ],
            "THOUGHTMESH_MODEL_CONFIG",
            "EOF",
        ),
        (
            &[
                ("THOUGHTMESH_OBJECTIVE", "x"),
                (
                    "THOUGHTMESH_MODEL_CONFIG",
                    r#"{"provider": "palm", "name": "p"}"#,
                ),
            ],
            "THOUGHTMESH_MODEL_CONFIG",
            "unknown variant `palm`",
        ),
        (
            &[
                ("THOUGHTMESH_OBJECTIVE", "x"),
                ("THOUGHTMESH_MODEL_CONFIG", MOCK),
                ("THOUGHTMESH_TOOLS", r#"[{"name": "teleport"}]"#),
            ],
            "THOUGHTMESH_TOOLS",
            "unknown tool `teleport`",
        ),
        (
            &[
                ("THOUGHTMESH_OBJECTIVE", "x"),
                ("THOUGHTMESH_MODEL_CONFIG", MOCK),
                ("THOUGHTMESH_KEY_RESULTS", r#"[42]"#),
            ],
            "THOUGHTMESH_KEY_RESULTS",
            "",
        ),
        (
            // The writ grants no network: a tool config cannot add a host.
            &[
                ("THOUGHTMESH_OBJECTIVE", "x"),
                ("THOUGHTMESH_MODEL_CONFIG", MOCK),
                (
                    "THOUGHTMESH_TOOLS",
                    r#"[{"name": "shell", "config": {"hosts": ["example.com"]}}]"#,
                ),
            ],
            "THOUGHTMESH_TOOLS",
            "does not fit the writ",
        ),
        (
            // An OpenAI model without a key anywhere.
            &[
                ("THOUGHTMESH_OBJECTIVE", "x"),
                (
                    "THOUGHTMESH_MODEL_CONFIG",
                    r#"{"provider": "openai", "name": "gpt-4.1-mini"}"#,
                ),
                ("OPENAI_API_KEY", ""),
            ],
            "THOUGHTMESH_MODEL_CONFIG",
            "OPENAI_API_KEY",
        ),
        (
            &[
                ("THOUGHTMESH_OBJECTIVE", "x"),
                ("THOUGHTMESH_MODEL_CONFIG", MOCK),
                ("PRAXIS_WRIT", "not-a-token"),
            ],
            "PRAXIS_WRIT",
            "",
        ),
    ];
    for (vars, variable, problem) in cases {
        let out = job.run(vars);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vars:?}: {stderr}");
        assert!(
            stderr.contains(&format!("praxis job: {variable}")) && stderr.contains(problem),
            "{vars:?}: expected {variable} and `{problem}` in: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{vars:?}");
    }
    // Nothing ran: no run was recorded.
    assert_eq!(job.praxis.json(&["runs", "--json"]), json!([]));
}

fn wait_for(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_mid_run_cancels_records_and_exits_1() {
    let job = Job::new();
    let script = job.praxis.script(
        "slow.json",
        json!({"turns": [
            {"tool_calls": [{"id": "s", "name": "shell", "arguments": {"command": "touch started && sleep 120"}}]},
            {"content": "slept"}
        ]}),
    );
    let model = json!({"provider": "scripted", "name": script}).to_string();
    let child = job
        .cmd(&[
            ("THOUGHTMESH_MODEL_CONFIG", &model),
            ("THOUGHTMESH_OBJECTIVE", "Sleep"),
            ("THOUGHTMESH_KEY_RESULTS", r#"["slept well"]"#),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = job.ws.path().join("started");
    wait_for("the tool call to start", || Path::new(&started).exists());
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let report = report_of(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{report:#} {}",
        text(&out.stderr)
    );
    assert_eq!(report["status"], "cancelled", "{report:#}");
    assert!(
        report["error"].as_str().unwrap_or("").contains("SIGTERM"),
        "{report:#}"
    );
    assert_eq!(report["key_results"][0]["judged_by"], "not_judged");
    let run_id = report["run_id"].as_str().unwrap();
    let verify = job.praxis.praxis(&["ledger", "verify", run_id]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    let runs = job.praxis.json(&["runs", "--json"]);
    assert_eq!(runs[0]["run_id"], run_id);
    assert_eq!(runs[0]["status"], "cancelled");
}

/// The run a server's Kubernetes executor created: `PRAXIS_RUN_ID` makes the job record under
/// that id (once only), and the run records which sandbox layers the pod gave it, the same
/// layers `praxis doctor` predicts there.
#[test]
fn a_job_attaches_to_the_run_id_it_is_given_and_records_its_sandbox_layers() {
    let job = Job::new();
    let run_id = "01jobattach0000000000000000";
    let vars = [
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        ("THOUGHTMESH_OBJECTIVE", "Summarize this repository"),
        ("PRAXIS_RUN_ID", run_id),
    ];
    let out = job.run(&vars);
    let report = report_of(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report:#} {}",
        text(&out.stderr)
    );
    assert_eq!(report["run_id"], run_id);
    let entries = job.praxis.entries(run_id);
    assert_eq!(entries[0]["kind"], "run_started");
    assert!(entries.iter().any(|e| e["kind"] == "run_finished"));

    // What the pod had, as the run recorded it and as doctor reports it beforehand.
    let layers = |list: &Value| -> Vec<(String, bool)> {
        list.as_array()
            .unwrap_or_else(|| panic!("no layer list: {list}"))
            .iter()
            .map(|l| (l["name"].as_str().unwrap().to_string(), l["active"] == true))
            .collect()
    };
    let recorded = layers(&entries[0]["payload"]["environment"]["sandbox"]["layers"]);
    assert!(!recorded.is_empty());
    let doctor = job.praxis.praxis(&["doctor", "--json"]);
    let doctor: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(
        layers(&doctor["sandbox_features"]["run_layers"]),
        recorded,
        "doctor: {doctor:#}"
    );

    // A second pod for the same run (a retried Job) does not record it again.
    let again = job.run(&vars);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("PRAXIS_RUN_ID=01jobattach"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(job.praxis.entries(run_id).len(), entries.len());

    // An id that could not be the server's is refused as configuration.
    let bad = job.run(&[
        ("THOUGHTMESH_MODEL_CONFIG", MOCK),
        ("THOUGHTMESH_OBJECTIVE", "x"),
        ("PRAXIS_RUN_ID", "../other"),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("PRAXIS_RUN_ID"),
        "{}",
        text(&bad.stderr)
    );
}
