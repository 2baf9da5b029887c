//! The SQLite ledger's writer thread: it owns the write connection and commits every
//! request already queued in one transaction (one fsync for the group), each request inside
//! its own savepoint so a failing one is rolled back alone; it replies only after COMMIT.

use super::{Counters, MAX_GROUP, RUN_HEAD, Reply, Request, Shared, sql_err};
use crate::error::LedgerError;
use crate::{Entry, GENESIS_HASH, Pending, canonical_json, hash_with_canonical_payload};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

pub(super) fn writer_loop(
    conn: Connection,
    path: &Path,
    rx: mpsc::Receiver<Request>,
    shared: &Shared,
) {
    while let Ok(first) = rx.recv() {
        shared.wait_while_paused();
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        commit_group(&conn, path, group, &shared.stats);
    }
}

struct Applied {
    entries: Vec<Entry>,
    new_blobs: u64,
}

enum Step {
    Applied(Applied),
    /// The request failed and its savepoint was rolled back; the group goes on.
    Failed(LedgerError),
    /// The transaction is in an unknown state; the whole group must be rolled back.
    Abort(String),
}

fn commit_group(conn: &Connection, path: &Path, group: Vec<Request>, stats: &Counters) {
    let not_committed = |run_id: String, reason: &str| LedgerError::NotCommitted {
        path: path.to_path_buf(),
        run_id,
        reason: reason.to_string(),
    };
    let answer_all = |group: Vec<Request>, reason: &str| {
        stats
            .requests
            .fetch_add(group.len() as u64, Ordering::AcqRel);
        for r in group {
            r.reply.send(Err(not_committed(r.run_id, reason)));
        }
    };
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        answer_all(
            group,
            &format!("could not start the write transaction: {e}"),
        );
        return;
    }
    let mut done: Vec<(Reply, String, Result<Applied, LedgerError>)> = Vec::new();
    let mut pending = group.into_iter();
    let mut abort = None;
    for request in pending.by_ref() {
        let Request {
            run_id,
            entries,
            blobs,
            attest,
            reply,
        } = request;
        match apply_in_savepoint(conn, path, &run_id, Pending::new(entries, attest), blobs) {
            Step::Applied(applied) => done.push((reply, run_id, Ok(applied))),
            Step::Failed(e) => done.push((reply, run_id, Err(e))),
            Step::Abort(reason) => {
                let error = not_committed(run_id.clone(), &reason);
                done.push((reply, run_id, Err(error)));
                abort = Some(reason);
                break;
            }
        }
    }
    let outcome = match abort {
        Some(reason) => Err(reason),
        None => exec_cached(conn, "COMMIT").map_err(|e| format!("COMMIT failed: {e}")),
    };
    if let Err(reason) = outcome {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        stats
            .requests
            .fetch_add(done.len() as u64, Ordering::AcqRel);
        for (reply, run_id, result) in done {
            // Keep a request's own error; everything else was rolled back with the group.
            match result {
                Err(e @ (LedgerError::InvalidRunId { .. } | LedgerError::InvalidEntry { .. })) => {
                    reply.send(Err(e))
                }
                _ => reply.send(Err(not_committed(run_id, &reason))),
            }
        }
        answer_all(pending.collect(), &reason);
        return;
    }
    // Counters first, so a caller that reads stats after its append resolved sees them.
    stats.commits.fetch_add(1, Ordering::AcqRel);
    stats
        .requests
        .fetch_add(done.len() as u64, Ordering::AcqRel);
    for (_, _, result) in &done {
        if let Ok(applied) = result {
            stats
                .entries
                .fetch_add(applied.entries.len() as u64, Ordering::AcqRel);
            stats.blobs.fetch_add(applied.new_blobs, Ordering::AcqRel);
        }
    }
    for (reply, _, result) in done {
        reply.send(result.map(|applied| applied.entries));
    }
}

/// Runs one statement without parameters from the connection's statement cache: the
/// transaction statements of every commit are parsed once per connection, not per commit.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn apply_in_savepoint(
    conn: &Connection,
    path: &Path,
    run_id: &str,
    entries: Pending,
    blobs: Vec<Vec<u8>>,
) -> Step {
    if let Err(e) = exec_cached(conn, "SAVEPOINT praxis_request") {
        return Step::Abort(format!("SAVEPOINT failed: {e}"));
    }
    match apply(conn, path, run_id, entries, blobs) {
        Ok(applied) => match exec_cached(conn, "RELEASE praxis_request") {
            Ok(()) => Step::Applied(applied),
            Err(e) => Step::Abort(format!("RELEASE failed: {e}")),
        },
        Err(error) => {
            match conn.execute_batch("ROLLBACK TO praxis_request; RELEASE praxis_request") {
                Ok(()) => Step::Failed(error),
                Err(e) => Step::Abort(format!(
                    "rolling back a failed request ({error}) failed: {e}"
                )),
            }
        }
    }
}

fn apply(
    conn: &Connection,
    path: &Path,
    run_id: &str,
    mut entries: Pending,
    blobs: Vec<Vec<u8>>,
) -> Result<Applied, LedgerError> {
    crate::rows::validate_run_id(run_id)?;
    let err = |what: &str| sql_err(path, format!("appending to run {run_id}: {what}"));
    let mut new_blobs = 0;
    if !blobs.is_empty() {
        let mut insert = conn
            .prepare_cached("INSERT OR IGNORE INTO blobs (id, size, data) VALUES (?1, ?2, ?3)")
            .map_err(err("preparing the blob insert"))?;
        for blob in &blobs {
            let id = praxis_core::blob_id(blob);
            // A Vec's length never exceeds isize::MAX, so it fits an i64.
            let inserted = insert
                .execute(params![id, blob.len() as i64, blob])
                .map_err(err(&format!("storing blob {id}")))?;
            new_blobs += inserted as u64;
        }
    }
    // The head is read inside the write transaction, so appends from other processes to
    // the same file stay chained.
    let head: Option<(i64, String)> = conn
        .prepare_cached(RUN_HEAD)
        .and_then(|mut stmt| {
            stmt.query_row(params![run_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(err("reading the run's last entry"))?;
    let (mut seq, mut prev_hash) = match head {
        Some((seq, hash)) => (
            u64::try_from(seq).map_err(|_| LedgerError::Corrupt {
                path: path.to_path_buf(),
                run_id: run_id.to_string(),
                seq,
                reason: "negative seq".into(),
            })?,
            hash,
        ),
        None => (0, GENESIS_HASH.to_string()),
    };
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO entries (run_id, seq, kind, at, payload, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(err("preparing the entry insert"))?;
    let mut out = Vec::new();
    while let Some((index, entry)) = entries.next(&out) {
        crate::rows::validate_entry(run_id, index, &entry)?;
        seq += 1;
        let seq_sql = i64::try_from(seq).map_err(|_| LedgerError::InvalidEntry {
            run_id: run_id.to_string(),
            index,
            reason: "the run has reached the largest possible seq".into(),
        })?;
        let payload_canonical = canonical_json(&entry.payload);
        let hash = hash_with_canonical_payload(
            run_id,
            seq,
            &entry.kind,
            &entry.at,
            &payload_canonical,
            &prev_hash,
        );
        insert
            .execute(params![
                run_id,
                seq_sql,
                entry.kind,
                entry.at,
                payload_canonical,
                prev_hash,
                hash
            ])
            .map_err(err(&format!("inserting entry {seq}")))?;
        out.push(Entry {
            run_id: run_id.to_string(),
            seq,
            kind: entry.kind,
            at: entry.at,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
            payload: entry.payload,
        });
    }
    Ok(Applied {
        entries: out,
        new_blobs,
    })
}
