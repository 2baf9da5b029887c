//! Driving your own loop with `<cmd>` blocks: parse, run concurrently, format the results.
//! `cargo run -p praxis --example cmd`

use praxis::cmd::{ExecConfig, execute_blocks, format_results, parse_cmd_blocks, strip_cmd_blocks};

#[tokio::main]
async fn main() {
    let reply = "Checking two things.\n<cmd>echo hello from $WHO</cmd>\n<cmd>ls /nonexistent</cmd>";
    println!("model said: {}", strip_cmd_blocks(reply));
    let blocks = parse_cmd_blocks(reply).expect("closed blocks");
    // Unconfined here so the example runs anywhere; ExecConfig::sandboxed(dir) confines.
    let config = ExecConfig::unconfined(std::env::temp_dir()).env("WHO", "praxis");
    let results = execute_blocks(&config, &blocks).await;
    assert_eq!(results[0].stdout, "hello from praxis\n");
    assert_ne!(results[1].exit_code, Some(0));
    println!("{}", format_results(&results));
}
