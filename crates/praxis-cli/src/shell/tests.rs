use super::*;

#[test]
fn words_are_split_like_a_shell() {
    assert_eq!(
        split_words(r#"run "fix the bug" --provider mock"#).unwrap(),
        ["run", "fix the bug", "--provider", "mock"]
    );
    assert_eq!(
        split_words(r#"deny 01jd 'no \ way' a\ b "say \"hi\"""#).unwrap(),
        ["deny", "01jd", r"no \ way", "a b", r#"say "hi""#]
    );
    assert_eq!(split_words("   ").unwrap(), Vec::<String>::new());
    assert_eq!(split_words(r#"run """#).unwrap(), ["run", ""]);
    assert!(split_words(r#"run "open"#).is_err());
    assert!(split_words("run 'open").is_err());
}

#[test]
fn completes_commands_then_run_ids() {
    let recent = vec!["01abc".to_string(), "01abd".to_string(), "02x".to_string()];
    assert_eq!(
        complete("ap", 2, &recent),
        (0, vec!["approvals".into(), "approve".into()])
    );
    assert_eq!(
        complete("ru", 2, &recent),
        (0, vec!["run".into(), "runs".into()])
    );
    assert_eq!(
        complete("follow 01ab", 11, &recent),
        (7, vec!["01abc".into(), "01abd".into()])
    );
    assert_eq!(
        complete("status ", 7, &recent),
        (
            7,
            vec!["01abc".into(), "01abd".into(), "02x".into(), "last".into()]
        )
    );
    // Only the first argument is a run id; `run` takes a task.
    assert_eq!(complete("deny 01abc no", 13, &recent), (11, vec![]));
    assert_eq!(complete("run 01", 6, &recent), (4, vec![]));
    // The cursor decides, not the end of the line.
    assert_eq!(complete("cancel 02 x", 9, &recent), (7, vec!["02x".into()]));
}

#[test]
fn lines_parse_as_commands() {
    let parse = |line: &str| Line::try_parse_from(join_task_words(split_words(line).unwrap()));
    assert!(matches!(
        parse("approve 01jd looks fine").unwrap().command,
        Command::Approve { run, reason } if run == "01jd" && reason == ["looks", "fine"]
    ));
    assert!(matches!(
        parse("run -d 'a task' --provider mock").unwrap().command,
        Command::Run { detach: true, args } if args.task == "a task" && args.provider.as_deref() == Some("mock")
    ));
    // The rest of the line is the task, quoted or not, around the flags.
    for line in [
        "run Fix the failing test",
        "run Fix the failing test --provider mock -d",
        "run --provider mock Fix the failing test",
        "run -p mock Fix the --max-steps 3 failing test",
        "run -d -- Fix the failing test",
    ] {
        let command = parse(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command;
        assert!(
            matches!(&command, Command::Run { args, .. } if args.task == "Fix the failing test"),
            "{line}"
        );
    }
    assert!(matches!(
        parse("run -p mock Fix it --max-steps 3").unwrap().command,
        Command::Run { args, .. } if args.max_steps == Some(3) && args.provider.as_deref() == Some("mock")
    ));
    assert!(matches!(parse("quit").unwrap().command, Command::Exit));
    let error = parse("deny 01jd").err().unwrap();
    assert!(error.to_string().contains("REASON"), "{error}");
    assert!(parse("explode").is_err());
}
