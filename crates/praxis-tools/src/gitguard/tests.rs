use super::*;

/// [`changes_may_start`] for a test thread.
fn changes_may_start_blocking() {
    while let Some(left) = until_changes_may_start() {
        std::thread::sleep(left.min(std::time::Duration::from_millis(1)));
    }
}

/// The guard's scan as a call sees it: a change made after it (planted by the test, as a
/// call would) starts once the scan's boundary passed, as every tool call does.
fn sweep(
    ws: &Workspace,
    settings: &GitGuardSettings,
    before: Option<&GitGuardState>,
) -> (GitGuardState, Vec<String>) {
    let swept = super::sweep(ws, settings, before);
    changes_may_start_blocking();
    swept
}
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A workspace with the user's own repository at the root and a nested one in `vendor/lib`,
/// each with a config and a hook.
fn fixture() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    for repo in [".git", "vendor/lib/.git"] {
        let git = dir.path().join(repo);
        fs::create_dir_all(git.join("hooks")).unwrap();
        fs::create_dir_all(git.join("objects")).unwrap();
        fs::create_dir_all(git.join("refs")).unwrap();
        fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        fs::write(git.join("config"), "[core]\n\tbare = false\n").unwrap();
        fs::write(git.join("hooks/pre-push"), "#!/bin/sh\n").unwrap();
    }
    fs::write(dir.path().join("readme.md"), "hello").unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    // A file changed in the same tick of the coarse clock as a scan counts as changed after
    // it (the guard errs that way): the fixture is older than the start's scan, as a user's
    // repository is.
    std::thread::sleep(std::time::Duration::from_millis(25));
    (dir, ws)
}

fn hook(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "#!/bin/sh\ntouch pwned\n").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A git directory's shape (what `git init` makes), with a planted config and hook.
fn planted_repo(git: &Path) {
    fs::create_dir_all(git.join("objects")).unwrap();
    fs::create_dir_all(git.join("refs/heads")).unwrap();
    fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::write(git.join("config"), "[core]\n\tfsmonitor = touch pwned\n").unwrap();
    hook(&git.join("hooks/pre-commit"));
}

fn start(ws: &Workspace) -> GitGuardState {
    let (state, removed) = sweep(ws, &GitGuardSettings::default(), None);
    assert!(removed.is_empty(), "the start removes nothing: {removed:?}");
    state
}

#[test]
fn what_is_there_at_the_start_is_kept() {
    let (dir, ws) = fixture();
    let state = start(&ws);
    assert!(state.known.contains_key(".git"));
    assert!(state.known.contains_key("vendor/lib/.git"));
    let (_, removed) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    assert!(removed.is_empty(), "{removed:?}");
    assert!(dir.path().join(".git/config").exists());
    assert!(dir.path().join("vendor/lib/.git/hooks/pre-push").exists());
}

#[test]
fn a_new_repository_loses_its_config_and_hooks() {
    let (dir, ws) = fixture();
    let state = start(&ws);
    planted_repo(&dir.path().join("sub/.git"));
    let (after, removed) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    assert_eq!(removed, ["sub/.git/config", "sub/.git/hooks"]);
    assert!(!dir.path().join("sub/.git/hooks").exists());
    // What is left is a repository git can use, with nothing that runs code.
    assert!(dir.path().join("sub/.git/HEAD").exists());
    // Known from now on: a second sweep has nothing to do.
    let (_, again) = sweep(&ws, &GitGuardSettings::default(), Some(&after));
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_git_file_and_the_directory_it_names_are_stripped() {
    let (dir, ws) = fixture();
    let state = start(&ws);
    planted_repo(&dir.path().join("gd"));
    fs::create_dir_all(dir.path().join("wt")).unwrap();
    fs::write(dir.path().join("wt/.git"), "gitdir: ../gd\n").unwrap();
    let (_, removed) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    assert_eq!(removed, ["gd/config", "gd/hooks", "wt/.git"]);
}

#[test]
fn changes_in_a_known_repository_are_removed_and_the_rest_kept() {
    let (dir, ws) = fixture();
    let state = start(&ws);
    let lib = dir.path().join("vendor/lib/.git");
    fs::write(lib.join("config"), "[core]\n\tfsmonitor = touch pwned\n").unwrap();
    hook(&lib.join("hooks/pre-commit"));
    let (_, removed) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    assert_eq!(
        removed,
        ["vendor/lib/.git/config", "vendor/lib/.git/hooks/pre-commit"]
    );
    // The user's own hook, unchanged, stays.
    assert!(lib.join("hooks/pre-push").exists());
}

#[test]
fn a_repository_moved_into_place_is_new_there() {
    // Made before the start (not a git directory: no HEAD, not named `.git`), so its
    // files' change times are old; moved to `sub/.git` by a later call.
    let (dir, ws) = fixture();
    let payload = dir.path().join("payload");
    planted_repo(&payload);
    fs::remove_file(payload.join("HEAD")).unwrap();
    let state = start(&ws);
    assert!(!state.known.contains_key("payload"));
    fs::create_dir_all(dir.path().join("sub")).unwrap();
    fs::rename(&payload, dir.path().join("sub/.git")).unwrap();
    let (_, removed) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    assert_eq!(removed, ["sub/.git/config", "sub/.git/hooks"]);
}

#[test]
fn a_bare_repository_shape_is_a_git_directory_too() {
    let (dir, ws) = fixture();
    let state = start(&ws);
    planted_repo(&dir.path().join("tools/bare"));
    let (_, removed) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    assert_eq!(removed, ["tools/bare/config", "tools/bare/hooks"]);
    // A directory with a config but no git shape is an ordinary directory.
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    fs::write(dir.path().join("etc/config"), "x").unwrap();
    let (state, _) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    let (_, removed) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    assert!(removed.is_empty(), "{removed:?}");
    assert!(dir.path().join("etc/config").exists());
}

#[test]
fn protected_directories_and_a_granting_writ_are_left_alone() {
    let (dir, ws) = fixture();
    let protected = GitGuardSettings {
        sweep: true,
        protected: vec![".git".into()],
    };
    let state = sweep(&ws, &protected, None).0;
    // The user changes the root config while the run goes on (commands cannot: read-only).
    fs::write(dir.path().join(".git/config"), "[remote \"origin\"]\n").unwrap();
    let (_, removed) = sweep(&ws, &protected, Some(&state));
    assert!(removed.is_empty(), "{removed:?}");

    let granted = GitGuardSettings {
        sweep: false,
        protected: Vec::new(),
    };
    planted_repo(&dir.path().join("sub/.git"));
    let (_, removed) = sweep(&ws, &granted, Some(&state));
    assert!(removed.is_empty(), "{removed:?}");
    assert!(dir.path().join("sub/.git/hooks/pre-commit").exists());
}

#[test]
fn a_link_is_removed_never_followed() {
    let (dir, ws) = fixture();
    let outside = tempfile::tempdir().unwrap();
    planted_repo(&outside.path().join("repo"));
    let state = start(&ws);
    std::os::unix::fs::symlink(outside.path().join("repo"), dir.path().join("sub.git")).unwrap();
    fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("repo"), dir.path().join("sub/.git")).unwrap();
    let (_, removed) = sweep(&ws, &GitGuardSettings::default(), Some(&state));
    assert_eq!(removed, ["sub/.git"]);
    // The link went, not what it pointed at.
    assert!(outside.path().join("repo/hooks/pre-commit").exists());
}

/// A tool that writes a file of the workspace directly (as a command of a call could).
struct Plant;

impl crate::ToolContract for Plant {
    fn spec(&self) -> praxis_core::ToolSpec {
        praxis_core::ToolSpec {
            name: "plant".into(),
            description: "writes `path` in the workspace".into(),
            effect: praxis_core::Effect::Write,
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            }),
        }
    }
    fn resources(&self, _: &serde_json::Value) -> Vec<praxis_core::Resource> {
        Vec::new()
    }
    fn execute<'a>(
        &'a self,
        ctx: &'a crate::ExecContext,
        args: serde_json::Value,
    ) -> crate::BoxFuture<'a, praxis_core::Observation> {
        Box::pin(async move {
            let path = ctx
                .workspace
                .root()
                .join(args["path"].as_str().unwrap_or(""));
            match fs::write(&path, "[core]\n\tfsmonitor = touch pwned\n") {
                Ok(()) => praxis_core::Observation::ok("planted"),
                Err(e) => praxis_core::Observation::error(e.to_string()),
            }
        })
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_started_right_after_a_scan_plants_what_the_next_scan_removes() {
    let (dir, ws) = fixture();
    let mut registry = crate::Registry::empty();
    registry.register(std::sync::Arc::new(Plant)).unwrap();
    let ctx = crate::ExecContext::new(ws.clone());
    let config = dir.path().join("vendor/lib/.git/config");
    // Several rounds: a call made in the scan's own tick of the coarse clock would carry a
    // change time before the scan's boundary, and be taken for the user's, unless the call
    // waits for the boundary (the scan itself does not).
    for round in 0..5 {
        let (state, _) = super::sweep(&ws, &GitGuardSettings::default(), None);
        let planted = registry
            .execute(
                &ctx,
                "plant",
                serde_json::json!({"path": "vendor/lib/.git/config"}),
            )
            .await;
        assert_eq!(
            planted.status,
            praxis_core::ExecStatus::Ok,
            "round {round}: {planted:?}"
        );
        let (_, removed) = super::sweep(&ws, &GitGuardSettings::default(), Some(&state));
        assert_eq!(removed, ["vendor/lib/.git/config"], "round {round}");
        assert!(!config.exists());
        // The user's config back for the next round.
        fs::write(&config, "[core]\n\tbare = false\n").unwrap();
    }
}

#[test]
fn a_change_made_just_before_the_start_is_the_users() {
    let (dir, ws) = fixture();
    for round in 0..5 {
        let config = dir.path().join("vendor/lib/.git/config");
        fs::write(&config, format!("[core]\n\tbare = false\n# {round}\n")).unwrap();
        // No wait between the user's change and the run's start.
        let (state, _) = super::sweep(&ws, &GitGuardSettings::default(), None);
        changes_may_start_blocking();
        let (_, removed) = super::sweep(&ws, &GitGuardSettings::default(), Some(&state));
        assert!(removed.is_empty(), "round {round}: {removed:?}");
        assert!(config.exists());
    }
}
