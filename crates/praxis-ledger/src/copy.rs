//! Copying every run and blob of one store into another (`praxis ledger copy --to`), e.g. a
//! SQLite data dir into PostgreSQL. Entries are appended with their recorded kind, time
//! and payload, so the target computes the very same hashes; each is compared with the
//! source's, and every copied chain is verified in the target afterwards.

use crate::approvals::ApprovalStore;
use crate::tokens::TokenStore;
use crate::{Entry, Ledger, LedgerError, NewEntry, VerifyReport};
use serde::Serialize;

/// Blobs moved per append (one transaction each).
const BLOB_BATCH: usize = 64;
/// Entries moved per append.
const ENTRY_BATCH: usize = 512;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    pub runs: u64,
    /// Entries appended now (entries the target already held are not counted).
    pub entries: u64,
    pub blobs: u64,
    /// Runs the target already held in full.
    pub runs_already_there: u64,
    /// Side-table rows added now (see [`copy_side`]).
    pub tokens: u64,
    pub run_owners: u64,
    pub pending_approvals: u64,
}

/// The side tables of one store that [`copy_side`] moves. Cancel requests are not among
/// them: one is addressed to the process driving the run where it was filed.
pub struct SideTables<'a> {
    pub tokens: &'a TokenStore,
    pub approvals: &'a ApprovalStore,
}

/// Adds to `to` what it lacks of `from`'s side tables: API tokens (hashes, tenant, creation
/// time), run owners, and approval requests still waiting. Running it again adds nothing;
/// a token or run `to` holds for another tenant is refused.
pub fn copy_side(
    from: &SideTables<'_>,
    to: &SideTables<'_>,
    report: &mut CopyReport,
) -> Result<(), CopyError> {
    let (tokens, owners) = from.tokens.copy_into(to.tokens)?;
    report.tokens += tokens;
    report.run_owners += owners;
    report.pending_approvals += from.approvals.copy_pending_into(to.approvals)?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "run {run_id} is broken in the source at seq {seq} ({problem}); nothing of it was copied"
    )]
    SourceBroken {
        run_id: String,
        seq: u64,
        problem: String,
    },
    #[error(
        "run {run_id} differs between the source and the target at seq {seq}; the target keeps its own"
    )]
    Diverged { run_id: String, seq: u64 },
    #[error("blob {id} is missing from the source")]
    BlobMissing { id: String },
    #[error(
        "{what} belongs to tenant {ours:?} in the source and {theirs:?} in the target; the target keeps its own"
    )]
    SideDiverged {
        what: String,
        ours: String,
        theirs: String,
    },
    #[error("run {run_id} does not verify in the target after the copy: seq {seq}: {problem}")]
    TargetBroken {
        run_id: String,
        seq: u64,
        problem: String,
    },
}

/// Copies what `to` lacks of `from`: blobs first (entries refer to them), then each run's
/// entries after the ones `to` already has. Running it again copies nothing.
pub async fn copy_all(from: &dyn Ledger, to: &dyn Ledger) -> Result<CopyReport, CopyError> {
    let mut report = CopyReport::default();
    let present: std::collections::HashSet<String> = to.blob_ids()?.into_iter().collect();
    let wanted: Vec<String> = from
        .blob_ids()?
        .into_iter()
        .filter(|id| !present.contains(id))
        .collect();
    for ids in wanted.chunks(BLOB_BATCH) {
        let mut blobs = Vec::with_capacity(ids.len());
        for id in ids {
            blobs.push(
                from.blob(id)?
                    .ok_or_else(|| CopyError::BlobMissing { id: id.clone() })?,
            );
        }
        to.append("praxis-copy", vec![], blobs).await?;
        report.blobs += ids.len() as u64;
    }
    // Oldest first, so the target lists them in the same order.
    let mut runs = from.runs()?;
    runs.reverse();
    for run in runs {
        let run_id = run.run_id;
        let source = from.entries(&run_id, 0)?;
        if let VerifyReport::Broken { seq, problem } = crate::verify_entries(&source) {
            return Err(CopyError::SourceBroken {
                run_id,
                seq,
                problem,
            });
        }
        let existing = to.entries(&run_id, 0)?;
        for (theirs, ours) in existing.iter().zip(&source) {
            if theirs.hash != ours.hash {
                return Err(CopyError::Diverged {
                    run_id,
                    seq: ours.seq,
                });
            }
        }
        if existing.len() > source.len() {
            return Err(CopyError::Diverged {
                run_id,
                seq: source.len() as u64 + 1,
            });
        }
        report.runs += 1;
        let missing = &source[existing.len()..];
        if missing.is_empty() {
            report.runs_already_there += 1;
        }
        for batch in missing.chunks(ENTRY_BATCH) {
            let new: Vec<NewEntry> = batch.iter().map(as_new).collect();
            let written = to.append(&run_id, new, vec![]).await?;
            for (copied, original) in written.iter().zip(batch) {
                if copied.hash != original.hash {
                    return Err(CopyError::Diverged {
                        run_id,
                        seq: original.seq,
                    });
                }
            }
            report.entries += written.len() as u64;
        }
        if let VerifyReport::Broken { seq, problem } = to.verify_run(&run_id)? {
            return Err(CopyError::TargetBroken {
                run_id,
                seq,
                problem,
            });
        }
    }
    Ok(report)
}

fn as_new(entry: &Entry) -> NewEntry {
    NewEntry {
        kind: entry.kind.clone(),
        payload: entry.payload.clone(),
        at: entry.at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvals::ApprovalRequest;

    struct Side {
        _dir: tempfile::TempDir,
        tokens: TokenStore,
        approvals: ApprovalStore,
    }

    fn side() -> Side {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        Side {
            tokens: TokenStore::open(&path).unwrap(),
            approvals: ApprovalStore::open(&path).unwrap(),
            _dir: dir,
        }
    }

    fn tables(s: &Side) -> SideTables<'_> {
        SideTables {
            tokens: &s.tokens,
            approvals: &s.approvals,
        }
    }

    fn request(run_id: &str, call_id: &str) -> ApprovalRequest {
        ApprovalRequest {
            run_id: run_id.into(),
            call_id: call_id.into(),
            tool: "shell".into(),
            arguments: "{}".into(),
            reason: "writes".into(),
            requested_at: crate::now_rfc3339(),
            expires_at_ms: None,
        }
    }

    #[test]
    fn side_tables_copy_once_and_keep_what_the_target_decided() {
        let (from, to) = (side(), side());
        let token = from.tokens.create("ops").unwrap();
        from.tokens.set_run_tenant("run-a", "ops").unwrap();
        from.approvals.request(&request("run-a", "c1")).unwrap();
        from.approvals.request(&request("run-a", "c2")).unwrap();
        // The target already decided c2: it is not filed again.
        to.approvals.request(&request("run-a", "c2")).unwrap();
        to.approvals
            .decide("run-a", Some("c2"), false, "ana", "no")
            .unwrap();

        let mut report = CopyReport::default();
        copy_side(&tables(&from), &tables(&to), &mut report).unwrap();
        assert_eq!(
            (report.tokens, report.run_owners, report.pending_approvals),
            (1, 1, 1)
        );
        assert_eq!(
            to.tokens.tenant_for(&token).unwrap().as_deref(),
            Some("ops")
        );
        assert_eq!(
            to.tokens.run_tenant("run-a").unwrap().as_deref(),
            Some("ops")
        );
        let pending: Vec<String> = to
            .approvals
            .pending()
            .unwrap()
            .into_iter()
            .map(|r| r.call_id)
            .collect();
        assert_eq!(pending, ["c1"]);

        let mut again = CopyReport::default();
        copy_side(&tables(&from), &tables(&to), &mut again).unwrap();
        assert_eq!(again, CopyReport::default());
    }

    #[test]
    fn a_run_owned_by_another_tenant_in_the_target_is_refused() {
        let (from, to) = (side(), side());
        from.tokens.set_run_tenant("run-a", "ops").unwrap();
        to.tokens.set_run_tenant("run-a", "eve").unwrap();
        let mut report = CopyReport::default();
        let err = copy_side(&tables(&from), &tables(&to), &mut report).unwrap_err();
        assert!(
            matches!(&err, CopyError::SideDiverged { ours, theirs, .. } if ours == "ops" && theirs == "eve"),
            "{err}"
        );
        assert_eq!(
            to.tokens.run_tenant("run-a").unwrap().as_deref(),
            Some("eve")
        );
    }
}
