//! Two tasks x two providers (the mock and a tier of it), at most two runs at once and
//! one per provider. `cargo run -p praxis --example fanout`

use praxis::fanout::{LaneLimits, fanout};

#[tokio::main]
async fn main() {
    let base = praxis::Agent::builder().config("models.backup", vec!["mock"]);
    let tasks = vec!["List the files".to_string(), "Summarize".to_string()];
    let providers = vec!["mock".to_string(), "backup".to_string()];
    let limits = LaneLimits {
        global: 2,
        per_key: 1,
    };
    for r in fanout(&base, &tasks, &providers, limits).await {
        let run = r.result.expect("run started");
        println!(
            "task {} on {}: run {} {}",
            r.task,
            r.provider,
            r.run_id,
            run.stop_reason.as_str()
        );
    }
}
