//! The built-in system prompt with instructions appended.
//! `cargo run -p praxis --example prompt`

fn main() {
    let prompt = praxis::build_system_prompt(&praxis::PromptData {
        workspace: "/srv/repo".into(),
        read_only: true,
        protocol: praxis::Protocol::Cmd,
        tools: vec!["shell".into()],
        now: 1_767_225_600_000,
        instructions: Some("Never run git push.".into()),
    });
    assert!(prompt.ends_with("Never run git push."));
    println!("{prompt}");
}
