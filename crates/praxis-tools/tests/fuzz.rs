//! Fuzz target (proptest; see tests/fuzz_support.rs at the workspace root for the modes):
//! `fs_patch` applied through the registry, as a model's call is. It never panics, writes
//! nothing unless the whole patch applies, applies a diff made from the file exactly, and
//! never touches a file outside the workspace.

#[path = "../../../tests/fuzz_support.rs"]
mod fuzz_support;

use fuzz_support::{fuzz, mutate, mutations};
use praxis_core::ExecStatus;
use praxis_tools::{ExecContext, Registry, Workspace};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;

const FILE: &str = "main.rs";

/// Lines drawn from a small pool, so searches repeat and hunks find look-alike context.
fn text() -> impl Strategy<Value = String> {
    let line = prop::sample::select(vec![
        "fn main() {",
        "}",
        "",
        "    let x = 1;",
        "    let x = 2;",
        "    println!(\"{x}\");",
        "// é 😀",
        "\t",
    ]);
    (proptest::collection::vec(line, 0..20), any::<bool>()).prop_map(|(lines, newline)| {
        let mut s = lines.join("\n");
        if newline {
            s.push('\n');
        }
        s
    })
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    registry: Registry,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            registry: Registry::builtin(),
        }
    }

    /// A workspace holding `FILE` with `original`, and a file beside the workspace; the
    /// patch's status and what `FILE` and the outside file hold after it.
    fn patch(&self, original: &str, args: Value) -> (ExecStatus, String, String) {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(ws.join(FILE), original).unwrap();
        std::fs::write(root.path().join(FILE), original).unwrap();
        let ctx = ExecContext::new(Workspace::new(&ws).unwrap());
        let observation = self
            .rt
            .block_on(self.registry.execute(&ctx, "fs_patch", args));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        (
            observation.status,
            read(&ws.join(FILE)),
            read(&root.path().join(FILE)),
        )
    }
}

#[test]
fn fuzz_fs_patch_with_a_diff_made_from_the_file() {
    let f = Fixture::new();
    fuzz(
        "fs_patch: diffs",
        file!(),
        128,
        (text(), text(), proptest::option::of(mutations())),
        |(original, wanted, damage)| {
            let diff = diffy::create_patch(&original, &wanted).to_string();
            let diff = match &damage {
                None => diff,
                Some(m) => String::from_utf8_lossy(&mutate(diff.as_bytes(), m)).into_owned(),
            };
            let (status, after, outside) = f.patch(&original, json!({"path": FILE, "diff": diff}));
            prop_assert_eq!(&outside, &original);
            match status {
                ExecStatus::Ok if damage.is_none() => prop_assert_eq!(&after, &wanted),
                ExecStatus::Ok => {}
                _ => {
                    prop_assert!(
                        damage.is_some() || original == wanted,
                        "a clean diff failed"
                    );
                    prop_assert_eq!(&after, &original, "a failed patch wrote the file");
                }
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_fs_patch_edits_are_all_or_nothing() {
    let f = Fixture::new();
    let piece = prop::sample::select(vec!["let x", "1;", "}", "\n", "fn main() {\n", "", "zzz"]);
    let edit = (piece.clone(), piece, any::<bool>());
    fuzz(
        "fs_patch: edits",
        file!(),
        128,
        (text(), proptest::collection::vec(edit, 0..4)),
        |(original, edits)| {
            let args: Vec<Value> = edits
                .iter()
                .map(|(s, r, all)| json!({"search": s, "replace": r, "replace_all": all}))
                .collect();
            let (status, after, outside) = f.patch(&original, json!({"path": FILE, "edits": args}));
            prop_assert_eq!(&outside, &original);
            // The oracle: each edit in turn on a string, refused when its search is empty,
            // absent, or (without replace_all) not unique.
            let mut expected = Some(original.clone());
            for (search, replace, all) in &edits {
                expected = expected.and_then(|text| {
                    let count = if search.is_empty() {
                        0
                    } else {
                        text.matches(search).count()
                    };
                    match (count, all) {
                        (0, _) => None,
                        (1, _) | (_, true) => Some(text.replace(search, replace)),
                        _ => None,
                    }
                });
            }
            match (status, expected) {
                (ExecStatus::Ok, Some(expected)) => prop_assert_eq!(&after, &expected),
                (ExecStatus::Ok, None) => {
                    prop_assert!(
                        false,
                        "fs_patch applied edits the oracle refuses: {edits:?}"
                    )
                }
                (_, _) => prop_assert_eq!(&after, &original, "a failed patch wrote the file"),
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_fs_patch_arguments_never_escape_or_panic() {
    let f = Fixture::new();
    let path = prop_oneof![
        Just(FILE.to_string()),
        Just(format!("../{FILE}")),
        Just(format!("./../ws/../{FILE}")),
        Just("/etc/passwd".to_string()),
        "[a-z./]{0,12}",
        any::<String>(),
    ];
    let value = prop_oneof![
        Just(Value::Null),
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!([{"search": "fn", "replace": "pwned"}])),
        Just(json!({"search": "fn"})),
        Just(json!("@@ -1 +1 @@\n-fn main() {\n+pwned\n")),
    ];
    let key = prop::sample::select(vec!["path", "diff", "edits", "replace_all", "extra"]);
    fuzz(
        "fs_patch: arguments",
        file!(),
        256,
        (path, proptest::collection::vec((key, value), 0..4)),
        |(path, fields)| {
            let mut args = serde_json::Map::new();
            args.insert("path".into(), json!(path));
            for (k, v) in fields {
                args.insert(k.to_string(), v);
            }
            let original = "fn main() {\n}\n";
            let (_, _, outside) = f.patch(original, Value::Object(args));
            prop_assert_eq!(
                outside,
                original,
                "fs_patch changed a file outside the workspace"
            );
            Ok(())
        },
    );
}
