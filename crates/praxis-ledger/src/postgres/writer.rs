//! The PostgreSQL writer: group commit over one session, like the SQLite writer thread.
//! Every request already queued joins one transaction (a savepoint each, so a bad request
//! fails alone) and one COMMIT, which with `synchronous_commit = on` returns only after the
//! server flushed its WAL. Before reading any run's head the transaction takes an advisory
//! lock per run (in sorted order, so two servers' groups cannot deadlock), which keeps
//! appends from several servers to one run chained.

use super::pg_err;
use crate::error::LedgerError;
use crate::sqlite::{MAX_GROUP, Request, Shared};
use crate::{Entry, GENESIS_HASH, Pending, canonical_json, hash_with_canonical_payload};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::{Client, Statement};

/// The channel on which every commit announces `run_id:last_seq` (delivered at COMMIT).
pub const ENTRIES_CHANNEL: &str = "praxis_entries";

struct Statements {
    lock: Statement,
    blob: Statement,
    head: Statement,
    insert: Statement,
    notify: Statement,
    lease: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Statements {
            lock: client
                .prepare("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .await?,
            blob: client
                .prepare(
                    "INSERT INTO blobs (id, size, data) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                )
                .await?,
            head: client
                .prepare(
                    "SELECT seq, hash FROM entries WHERE run_id = $1 ORDER BY seq DESC LIMIT 1",
                )
                .await?,
            insert: client
                .prepare(
                    "INSERT INTO entries (run_id, seq, kind, at, payload, prev_hash, hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await?,
            notify: client.prepare("SELECT pg_notify($1, $2)").await?,
            // FOR SHARE: a takeover's UPDATE of the lease waits for this transaction, so
            // once a takeover committed, the old driver's next group sees the new owner.
            lease: client
                .prepare("SELECT owner FROM run_leases WHERE run_id = $1 FOR SHARE")
                .await?,
        })
    }
}

pub(crate) struct Writer {
    pub(crate) client: Client,
    pub(crate) url: PathBuf,
    pub(crate) shared: Arc<Shared>,
    /// Who this writer appends as (see `PostgresLedger::connect_as`).
    pub(crate) owner: Option<String>,
}

impl Writer {
    pub(crate) async fn run(self, mut rx: UnboundedReceiver<Request>) {
        let statements = Statements::prepare(&self.client).await;
        while let Some(first) = rx.recv().await {
            self.shared.wait_while_paused();
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            match &statements {
                Ok(statements) => self.commit_group(statements, group).await,
                Err(e) => {
                    let reason = format!("could not prepare the writer's statements: {e}");
                    self.answer_all(group, &reason);
                }
            }
        }
    }

    fn not_committed(&self, run_id: String, reason: &str) -> LedgerError {
        LedgerError::NotCommitted {
            path: self.url.clone(),
            run_id,
            reason: reason.to_string(),
        }
    }

    fn answer_all(&self, group: Vec<Request>, reason: &str) {
        self.shared
            .stats
            .requests
            .fetch_add(group.len() as u64, Ordering::AcqRel);
        for r in group {
            let error = self.not_committed(r.run_id, reason);
            r.reply.send(Err(error));
        }
    }

    async fn commit_group(&self, st: &Statements, group: Vec<Request>) {
        let client = &self.client;
        let mut runs: Vec<&str> = group.iter().map(|r| r.run_id.as_str()).collect();
        runs.sort_unstable();
        runs.dedup();
        let begin = async {
            client.batch_execute("BEGIN").await?;
            for run in runs {
                client.execute(&st.lock, &[&run]).await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        };
        if let Err(e) = begin.await {
            let _ = client.batch_execute("ROLLBACK").await;
            self.answer_all(
                group,
                &format!("could not start the write transaction: {e}"),
            );
            return;
        }
        let mut done = Vec::with_capacity(group.len());
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
            if let Err(e) = client.batch_execute("SAVEPOINT praxis_request").await {
                let reason = format!("SAVEPOINT failed: {e}");
                done.push((
                    reply,
                    run_id.clone(),
                    Err(self.not_committed(run_id, &reason)),
                ));
                abort = Some(reason);
                break;
            }
            let result = match self.fence(st, &run_id).await {
                Ok(()) => {
                    apply(
                        client,
                        st,
                        &self.url,
                        &run_id,
                        Pending::new(entries, attest),
                        blobs,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            let end = match &result {
                Ok(_) => "RELEASE praxis_request",
                Err(_) => "ROLLBACK TO praxis_request; RELEASE praxis_request",
            };
            if let Err(e) = client.batch_execute(end).await {
                let reason = format!("ending the request's savepoint failed: {e}");
                done.push((
                    reply,
                    run_id.clone(),
                    Err(self.not_committed(run_id, &reason)),
                ));
                abort = Some(reason);
                break;
            }
            done.push((reply, run_id, result));
        }
        let outcome = match abort {
            Some(reason) => Err(reason),
            None => client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| format!("COMMIT failed: {e}")),
        };
        if let Err(reason) = outcome {
            let _ = client.batch_execute("ROLLBACK").await;
            self.shared
                .stats
                .requests
                .fetch_add(done.len() as u64, Ordering::AcqRel);
            for (reply, run_id, result) in done {
                match result {
                    Err(
                        e @ (LedgerError::InvalidRunId { .. }
                        | LedgerError::InvalidEntry { .. }
                        | LedgerError::LeaseHeld { .. }),
                    ) => reply.send(Err(e)),
                    _ => reply.send(Err(self.not_committed(run_id, &reason))),
                }
            }
            self.answer_all(pending.collect(), &reason);
            return;
        }
        let stats = &self.shared.stats;
        stats.commits.fetch_add(1, Ordering::AcqRel);
        stats
            .requests
            .fetch_add(done.len() as u64, Ordering::AcqRel);
        for (_, _, result) in &done {
            if let Ok((entries, new_blobs)) = result {
                stats
                    .entries
                    .fetch_add(entries.len() as u64, Ordering::AcqRel);
                stats.blobs.fetch_add(*new_blobs, Ordering::AcqRel);
            }
        }
        for (reply, _, result) in done {
            reply.send(result.map(|(entries, _)| entries));
        }
    }
}

impl Writer {
    /// Refuses an append to a run whose lease names another driver (taken over: this
    /// process is stale). A run without a lease row is anyone's (the CLI, tests).
    async fn fence(&self, st: &Statements, run_id: &str) -> Result<(), LedgerError> {
        let row = self
            .client
            .query_opt(&st.lease, &[&run_id])
            .await
            .map_err(pg_err(
                &self.url,
                format!("reading the lease of run {run_id}"),
            ))?;
        let Some(row) = row else {
            return Ok(());
        };
        let owner: String = row.get(0);
        if self.owner.as_deref() == Some(owner.as_str()) {
            return Ok(());
        }
        Err(LedgerError::LeaseHeld {
            path: self.url.clone(),
            run_id: run_id.to_string(),
            owner,
            me: self
                .owner
                .clone()
                .unwrap_or_else(|| "a process without a lease".into()),
        })
    }
}

async fn apply(
    client: &Client,
    st: &Statements,
    url: &Path,
    run_id: &str,
    mut entries: Pending,
    blobs: Vec<Vec<u8>>,
) -> Result<(Vec<Entry>, u64), LedgerError> {
    crate::rows::validate_run_id(run_id)?;
    let err = |what: &str| pg_err(url, format!("appending to run {run_id}: {what}"));
    let mut new_blobs = 0;
    for blob in &blobs {
        let id = praxis_core::blob_id(blob);
        let size = blob.len() as i64;
        new_blobs += client
            .execute(&st.blob, &[&id, &size, blob])
            .await
            .map_err(err(&format!("storing blob {id}")))?;
    }
    let head = client
        .query_opt(&st.head, &[&run_id])
        .await
        .map_err(err("reading the run's last entry"))?;
    let (mut seq, mut prev_hash) = match head {
        Some(row) => {
            let seq: i64 = row.get(0);
            let seq = u64::try_from(seq).map_err(|_| LedgerError::Corrupt {
                path: url.to_path_buf(),
                run_id: run_id.to_string(),
                seq,
                reason: "negative seq".into(),
            })?;
            (seq, row.get::<_, String>(1))
        }
        None => (0, GENESIS_HASH.to_string()),
    };
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
        client
            .execute(
                &st.insert,
                &[
                    &run_id,
                    &seq_sql,
                    &entry.kind,
                    &entry.at,
                    &payload_canonical,
                    &prev_hash,
                    &hash,
                ],
            )
            .await
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
    if !out.is_empty() {
        client
            .execute(&st.notify, &[&ENTRIES_CHANNEL, &format!("{run_id}:{seq}")])
            .await
            .map_err(err("announcing the entries"))?;
    }
    Ok((out, new_blobs))
}
