//! `praxis::cmd`: blocks run concurrently, in the sandbox, with read-only and read-write
//! grants; a write to a read-only path fails.

use praxis::cmd::{ExecConfig, PathAccess, execute_blocks, format_results, parse_cmd_blocks};
use std::path::PathBuf;
use std::time::Duration;

/// Test dirs under Cargo's target tmp (not /tmp, which the sandbox replaces).
fn dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("praxis-cmd");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(base)
        .unwrap()
        .keep();
    std::fs::canonicalize(dir).unwrap()
}

#[tokio::test]
async fn sandboxed_blocks_honour_read_only_and_read_write_paths() {
    let work = dir("work");
    let ro = dir("ro");
    let rw = dir("rw");
    let outside = dir("outside");
    std::fs::write(ro.join("input.txt"), "from the read-only dir\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "not granted\n").unwrap();
    let config = ExecConfig::sandboxed(&work)
        .path(&ro, PathAccess::ReadOnly)
        .path(&rw, PathAccess::ReadWrite)
        .env("GREETING", "hi");
    let reply = format!(
        "<cmd>cat {ro}/input.txt</cmd>\
         <cmd>echo x > {ro}/new.txt</cmd>\
         <cmd>echo y > {rw}/new.txt && cat {rw}/new.txt</cmd>\
         <cmd>echo z > here.txt && echo $GREETING</cmd>\
         <cmd>cat {outside}/secret.txt</cmd>\
         <cmd>echo $OPENAI_API_KEY$PRAXIS_SECRET_FOR_TEST</cmd>",
        ro = ro.display(),
        rw = rw.display(),
        outside = outside.display(),
    );
    // SAFETY: set before any command starts; nothing else in this binary reads it.
    unsafe { std::env::set_var("PRAXIS_SECRET_FOR_TEST", "leak") };
    let blocks = parse_cmd_blocks(&reply).unwrap();
    let results = execute_blocks(&config, &blocks).await;
    assert_eq!(results.len(), 6);
    for r in &results {
        assert_eq!(r.error, None, "{r:?}");
    }
    assert_eq!(results[0].stdout, "from the read-only dir\n");
    assert_eq!(results[0].exit_code, Some(0));
    // The write to the read-only path fails, and nothing appears there.
    assert_ne!(results[1].exit_code, Some(0), "{:?}", results[1]);
    assert!(
        results[1].stderr.contains("denied") || results[1].stderr.contains("Read-only"),
        "{:?}",
        results[1]
    );
    assert!(!ro.join("new.txt").exists());
    assert_eq!(results[2].stdout, "y\n");
    assert_eq!(std::fs::read_to_string(rw.join("new.txt")).unwrap(), "y\n");
    assert_eq!(results[3].stdout, "hi\n");
    assert!(work.join("here.txt").exists());
    // A path that was not granted is out of reach.
    assert_ne!(results[4].exit_code, Some(0), "{:?}", results[4]);
    assert!(!results[4].stdout.contains("not granted"));
    // Only the clean environment and the config's variables reach a command.
    assert_eq!(results[5].stdout, "\n");
    let text = format_results(&results);
    assert_eq!(text.matches("<result>").count(), 6);
}

#[tokio::test]
async fn blocks_run_concurrently_and_time_out_alone() {
    let work = dir("conc");
    // Each block waits until every other block has announced itself: only concurrent
    // execution can finish them all before the timeout.
    let n = 4;
    let blocks: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "touch started.{i}; while [ $(ls started.* | wc -l) -lt {n} ]; do sleep 0.05; done; echo done {i}"
            )
        })
        .chain(["sleep 30".to_string()])
        .collect();
    let mut config = ExecConfig::unconfined(&work);
    config.timeout = Duration::from_secs(5);
    let results = execute_blocks(&config, &blocks).await;
    for (i, r) in results.iter().take(n).enumerate() {
        assert_eq!(r.stdout, format!("done {i}\n"), "{r:?}");
        assert_eq!(r.exit_code, Some(0));
    }
    let slow = &results[n];
    assert_eq!(slow.exit_code, None);
    assert!(
        slow.error.as_deref().unwrap().contains("timed out"),
        "{slow:?}"
    );
    // An empty block is reported, not run.
    let empty = execute_blocks(&config, &[String::new()]).await;
    assert_eq!(empty[0].error.as_deref(), Some("empty command"));
}

#[test]
fn parse_and_strip_are_the_kernels() {
    let text = "Sure.\n<cmd>ls</cmd>\nthen <cmd> cat a </cmd> done";
    assert_eq!(parse_cmd_blocks(text).unwrap(), ["ls", "cat a"]);
    assert_eq!(praxis::cmd::strip_cmd_blocks(text), "Sure.\n\nthen  done");
    assert!(parse_cmd_blocks("<cmd>ls").is_err());
}
