//! The memory bound of a command and the blob caps of a run are settings (`[limits]` of
//! `praxis.toml`): the home sets them, a workspace may only narrow them (and says so), a bad
//! value names the setting, and the resolver puts them into the run's options.

use praxis_runtime::config::{self, CONFIG_FILE};
use praxis_runtime::home::DataHome;
use praxis_runtime::run_request::{self, Asked, RunRequest};

fn no_env(_: &str) -> Option<String> {
    None
}

const GIB: u64 = 1 << 30;

#[test]
fn the_home_sets_the_memory_bound_and_blob_caps() {
    let home_dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let home = DataHome::at(home_dir.path());
    // Defaults: 4 GiB per command, 1 GiB of blobs per run, 16 GiB per data dir.
    let defaults = config::load(&home, None, &[], &no_env).unwrap();
    let c = defaults.confinement().unwrap();
    assert_eq!(c.command_memory_bytes, 4 * GIB);
    assert_eq!(c.capture.max_run_blob_bytes, GIB);
    assert_eq!(c.capture.max_data_dir_blob_bytes, 16 * GIB);

    std::fs::write(
        home_dir.path().join(CONFIG_FILE),
        "[limits]\ncommand_memory_bytes = 536870912\nrun_blob_bytes = 1048576\ndata_dir_blob_bytes = 2147483648\n",
    )
    .unwrap();
    let request = RunRequest::new(
        Asked::new("look around".to_string(), "task"),
        ws.path().to_path_buf(),
    );
    let resolved = run_request::resolve(&home, request, &no_env).unwrap();
    let options = &resolved.options;
    assert_eq!(
        options.tool_limits.sandbox.resources.memory_bytes,
        512 << 20
    );
    assert_eq!(options.capture.max_run_blob_bytes, 1 << 20);
    assert_eq!(options.capture.max_data_dir_blob_bytes, 2 * GIB);
    let layered = config::load(&home, None, &[], &no_env).unwrap();
    assert!(
        layered
            .source_of("limits.command_memory_bytes")
            .contains(CONFIG_FILE)
    );
}

#[test]
fn a_workspace_may_only_narrow_them_and_says_what_it_set() {
    let home_dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let home = DataHome::at(home_dir.path());
    std::fs::write(
        home_dir.path().join(CONFIG_FILE),
        "[limits]\ncommand_memory_bytes = 1073741824\nrun_blob_bytes = 1048576\n",
    )
    .unwrap();
    // Raising the memory bound and the per-run cap: clamped to the home's; narrowing the
    // data dir's cap: taken.
    std::fs::write(
        ws.path().join(CONFIG_FILE),
        "[limits]\ncommand_memory_bytes = 68719476736\nrun_blob_bytes = 999999999999\ndata_dir_blob_bytes = 4096\n",
    )
    .unwrap();
    let request = RunRequest::new(
        Asked::new("look around".to_string(), "task"),
        ws.path().to_path_buf(),
    );
    let resolved = run_request::resolve(&home, request, &no_env).unwrap();
    let options = &resolved.options;
    assert_eq!(options.tool_limits.sandbox.resources.memory_bytes, GIB);
    assert_eq!(options.capture.max_run_blob_bytes, 1 << 20);
    assert_eq!(options.capture.max_data_dir_blob_bytes, 4096);
    let warnings = resolved.warnings.join("\n");
    for said in [
        "limits.command_memory_bytes = 68719476736",
        "limits.run_blob_bytes = 999999999999",
    ] {
        assert!(warnings.contains(said), "{said} not said in:\n{warnings}");
    }
    let notes = resolved.notes.join("\n");
    assert!(
        notes.contains("limits.data_dir_blob_bytes = 4096"),
        "{notes}"
    );
}

#[test]
fn a_bad_value_names_the_setting() {
    let home_dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let home = DataHome::at(home_dir.path());
    std::fs::write(
        home_dir.path().join(CONFIG_FILE),
        "[limits]\ncommand_memory_bytes = 4096\n",
    )
    .unwrap();
    let request = RunRequest::new(
        Asked::new("look around".to_string(), "task"),
        ws.path().to_path_buf(),
    );
    let err = run_request::resolve(&home, request, &no_env)
        .err()
        .expect("a 4 KiB memory bound is refused")
        .to_string();
    assert!(
        err.contains("limits.command_memory_bytes") && err.contains(CONFIG_FILE),
        "{err}"
    );
    // A negative size does not parse, and the error names the key and the file.
    std::fs::write(
        home_dir.path().join(CONFIG_FILE),
        "[limits]\nrun_blob_bytes = -1\n",
    )
    .unwrap();
    let err = config::load(&home, None, &[], &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("run_blob_bytes") && err.contains(CONFIG_FILE),
        "{err}"
    );
}

/// The caps have environment variables too (through the same loader): they beat the files,
/// the source says which variable set them, and a bad value names the variable.
#[test]
fn environment_variables_set_the_caps() {
    let home_dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let home = DataHome::at(home_dir.path());
    std::fs::write(
        home_dir.path().join(CONFIG_FILE),
        "[limits]\nrun_blob_bytes = 1048576\n",
    )
    .unwrap();
    let env = |var: &str| -> Option<String> {
        match var {
            "PRAXIS_COMMAND_MEMORY_BYTES" => Some("268435456".into()),
            "PRAXIS_RUN_BLOB_BYTES" => Some(" 2097152 ".into()),
            "PRAXIS_DATA_DIR_BLOB_BYTES" => Some("3221225472".into()),
            _ => None,
        }
    };
    let request = RunRequest::new(
        Asked::new("look around".to_string(), "task"),
        ws.path().to_path_buf(),
    );
    let resolved = run_request::resolve(&home, request, &env).unwrap();
    let options = &resolved.options;
    assert_eq!(
        options.tool_limits.sandbox.resources.memory_bytes,
        256 << 20
    );
    assert_eq!(options.capture.max_run_blob_bytes, 2 << 20);
    assert_eq!(options.capture.max_data_dir_blob_bytes, 3 * GIB);
    let layered = config::load(&home, None, &[], &env).unwrap();
    assert_eq!(
        layered.source_of("limits.run_blob_bytes"),
        "env PRAXIS_RUN_BLOB_BYTES"
    );

    for (var, value) in [
        ("PRAXIS_COMMAND_MEMORY_BYTES", "4GiB"),
        ("PRAXIS_RUN_BLOB_BYTES", "-1"),
        ("PRAXIS_DATA_DIR_BLOB_BYTES", "1e9"),
    ] {
        let bad = |asked: &str| (asked == var).then(|| value.to_string());
        let err = config::load(&home, None, &[], &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains(var) && err.contains(value), "{err}");
    }
    // Below the smallest memory bound: refused, naming the variable as its source.
    let small = |asked: &str| (asked == "PRAXIS_COMMAND_MEMORY_BYTES").then(|| "4096".into());
    let err = config::load(&home, None, &[], &small)
        .unwrap()
        .confinement()
        .unwrap_err()
        .to_string();
    assert!(err.contains("PRAXIS_COMMAND_MEMORY_BYTES"), "{err}");
}
