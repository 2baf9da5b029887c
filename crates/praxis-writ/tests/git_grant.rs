//! Finding 8: the workspace's `.git` is read-only to commands unless the writ grants the
//! command tools write there with a pattern naming `.git` (the same grant a file tool needs).

mod common;

use common::now;
use praxis_writ::{Rules, WritSpec};

fn rules(blocks: &[&str]) -> Rules {
    let specs = blocks
        .iter()
        .map(|toml| {
            WritSpec::from_toml_str(toml)
                .unwrap()
                .resolved(now())
                .unwrap()
        })
        .collect();
    Rules::new(specs).unwrap()
}

fn block(shell_paths: &str, extra: &str) -> String {
    format!(
        "subject = \"agent\"\nexpires_in = \"1h\"\neffect_ceiling = \"exec\"\n[[tools]]\nname = \"shell\"\nallow_commands = [\"*\"]\n{shell_paths}\n{extra}"
    )
}

fn commands() -> Vec<String> {
    vec!["shell".into(), "test_run".into()]
}

#[test]
fn commands_write_git_only_under_a_pattern_naming_it() {
    // No paths (any workspace path) and `**`: not `.git`.
    assert!(!rules(&[&block("", "")]).commands_write_git(&commands()));
    assert!(!rules(&[&block("paths = [\"**\"]", "")]).commands_write_git(&commands()));
    // A read-only grant naming `.git`: not for writing.
    assert!(
        !rules(&[&block("paths = [\".git/**\"]\nmode = \"read\"", "")])
            .commands_write_git(&commands())
    );
    // A pattern naming `.git` that does not cover the hooks: no.
    assert!(
        !rules(&[&block("paths = [\"**\", \".git/config\"]", "")]).commands_write_git(&commands())
    );
    // The grant.
    let granted = block("paths = [\"**\", \".git/**\"]", "");
    assert!(rules(&[&granted]).commands_write_git(&commands()));
    // Every block must grant it: an attenuating block without it takes it back.
    assert!(!rules(&[&granted, &block("paths = [\"**\"]", "")]).commands_write_git(&commands()));
    // Another command tool the writ grants without `.git` shares the sandbox: no.
    let both = block(
        "paths = [\"**\", \".git/**\"]",
        "[[tools]]\nname = \"test_run\"\npaths = [\"**\"]",
    );
    assert!(!rules(&[&both]).commands_write_git(&commands()));
    // No command tool granted at all: nothing to open.
    assert!(!rules(&[&granted]).commands_write_git(&["test_run".to_string()]));
}
