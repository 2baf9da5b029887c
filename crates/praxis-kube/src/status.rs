//! How a run's Job status flows back into the run's status.
//!
//! The shared ledger is the truth: when the pod recorded `run_finished`, that status
//! stands. The Job's status decides only what the ledger cannot say: the pod has not
//! started yet (queued), it is running, or the Job ended without the run being finished
//! in the ledger (the image could not be pulled, the pod was OOM-killed or evicted, the
//! deadline struck before the process could record).

use k8s_openapi::api::batch::v1::Job;
use praxis_core::RunStatus;

/// What the Job's status says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobPhase {
    /// No pod is active yet, and the Job has not ended.
    Pending,
    Active,
    /// `Complete`: `praxis job` exited 0 (objective achieved).
    Succeeded,
    /// `Failed`, with the condition's reason (`DeadlineExceeded`, `BackoffLimitExceeded`, ...).
    Failed {
        reason: String,
    },
}

/// The phase of `job` from its conditions and counters.
pub fn phase(job: &Job) -> JobPhase {
    let Some(status) = &job.status else {
        return JobPhase::Pending;
    };
    for condition in status.conditions.iter().flatten() {
        if condition.status != "True" {
            continue;
        }
        match condition.type_.as_str() {
            "Complete" => return JobPhase::Succeeded,
            "Failed" => {
                return JobPhase::Failed {
                    reason: condition.reason.clone().unwrap_or_else(|| "Failed".into()),
                };
            }
            _ => {}
        }
    }
    if status.active.unwrap_or(0) > 0 {
        JobPhase::Active
    } else {
        JobPhase::Pending
    }
}

/// The run's status: the ledger's when the run finished there (`recorded`), otherwise the
/// Job's, with a reason for a Job that ended without a record.
pub fn run_status(job: &Job, recorded: Option<RunStatus>) -> (RunStatus, Option<String>) {
    let finished = recorded.filter(|s| {
        !matches!(
            s,
            RunStatus::Queued
                | RunStatus::Running
                | RunStatus::AwaitingApproval
                | RunStatus::Interrupted
        )
    });
    if let Some(status) = finished {
        return (status, None);
    }
    match phase(job) {
        JobPhase::Pending => (recorded.unwrap_or(RunStatus::Queued), None),
        JobPhase::Active => (recorded.unwrap_or(RunStatus::Running), None),
        JobPhase::Succeeded => (
            RunStatus::Failed,
            Some("the Job completed but the run recorded no end in the ledger".into()),
        ),
        JobPhase::Failed { reason } if reason == "DeadlineExceeded" => (
            RunStatus::Cancelled,
            Some("the Job's activeDeadlineSeconds passed before the run recorded its end".into()),
        ),
        JobPhase::Failed { reason } => (
            RunStatus::Failed,
            Some(format!(
                "the Job failed ({reason}) before the run recorded its end"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn with_status(active: i32, condition: Option<(&str, &str, &str)>) -> Job {
        Job {
            status: Some(JobStatus {
                active: Some(active),
                conditions: condition.map(|(type_, status, reason)| {
                    vec![JobCondition {
                        type_: type_.into(),
                        status: status.into(),
                        reason: Some(reason.into()),
                        ..JobCondition::default()
                    }]
                }),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn phases_follow_conditions_then_counters() {
        assert_eq!(phase(&Job::default()), JobPhase::Pending);
        assert_eq!(phase(&with_status(1, None)), JobPhase::Active);
        assert_eq!(
            phase(&with_status(
                0,
                Some(("Complete", "True", "CompletionsReached"))
            )),
            JobPhase::Succeeded
        );
        assert_eq!(
            phase(&with_status(
                0,
                Some(("Failed", "True", "DeadlineExceeded"))
            )),
            JobPhase::Failed {
                reason: "DeadlineExceeded".into()
            }
        );
        // A condition that is not true yet says nothing.
        assert_eq!(
            phase(&with_status(1, Some(("Failed", "False", "x")))),
            JobPhase::Active
        );
    }

    #[test]
    fn the_ledger_wins_and_the_job_fills_in_what_it_cannot_say() {
        let failed = with_status(0, Some(("Failed", "True", "BackoffLimitExceeded")));
        // `praxis job` exits 1 when a key result is not met: the run itself completed.
        assert_eq!(
            run_status(&failed, Some(RunStatus::Completed)),
            (RunStatus::Completed, None)
        );
        assert_eq!(
            run_status(&with_status(0, None), None),
            (RunStatus::Queued, None)
        );
        assert_eq!(
            run_status(&with_status(1, None), Some(RunStatus::Running)),
            (RunStatus::Running, None)
        );
        let (status, why) = run_status(&failed, Some(RunStatus::Running));
        assert_eq!(status, RunStatus::Failed);
        assert!(why.unwrap().contains("BackoffLimitExceeded"));
        let deadline = with_status(0, Some(("Failed", "True", "DeadlineExceeded")));
        assert_eq!(run_status(&deadline, None).0, RunStatus::Cancelled);
    }
}
