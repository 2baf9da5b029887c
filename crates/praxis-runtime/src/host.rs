//! Facts about the host and process a run starts in, recorded in `run_started` (and used
//! to tell a live run from an interrupted one).

use praxis_tools::ExecContext;
use serde_json::{Value, json};

/// The host and process a run starts in, and what its tools run within: the fabric and
/// each sandbox layer, active or unavailable with why (`ctx.sandbox_report()`).
pub(crate) fn environment(ctx: &ExecContext) -> Value {
    let this = this_process();
    let sandbox = ctx.sandbox_report();
    json!({
        "praxis_version": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "host": this.host,
        "pid": this.pid,
        "pid_start_ticks": this.start_ticks,
        "boot_id": this.boot_id,
        "tool_fabric": sandbox["fabric"].clone(),
        "sandbox": sandbox,
    })
}

/// Who this process is and where it runs, read once: none of it changes while it runs (no
/// process of Praxis forks and goes on running runs), and reading its `/proc/self/stat`
/// walks every thread of a busy server (it was 1% of a server's CPU).
pub(crate) struct ThisProcess {
    pub host: String,
    pub pid: u32,
    pub start_ticks: Option<u64>,
    pub boot_id: Option<String>,
}

pub(crate) fn this_process() -> &'static ThisProcess {
    static THIS: std::sync::OnceLock<ThisProcess> = std::sync::OnceLock::new();
    THIS.get_or_init(|| {
        let pid = std::process::id();
        ThisProcess {
            host: hostname(),
            pid,
            start_ticks: process_start_ticks(pid as i32),
            boot_id: boot_id(),
        }
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
pub(crate) fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields after it follow the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // A zombie (state Z) or dead (X) process has exited: it drives nothing any more.
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}
