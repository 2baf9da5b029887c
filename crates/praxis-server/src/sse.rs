//! The live feed of one run: the ledger tail after `Last-Event-ID`, then live entries and
//! model deltas, as server-sent events.
//!
//! No gap and no duplicate between the replayed part and the live part: the follower
//! subscribes to the run's live channel first, then reads the ledger, then skips live
//! entries it already replayed (seq <= the last one sent). A follower that falls behind the
//! bounded live channel is dropped; it reconnects with `Last-Event-ID` and the rest comes
//! from the ledger, so it misses nothing and the server holds no unbounded buffer for it.
//! Runs driven by another process (a local `praxis run` on the same data directory) are
//! followed by polling the ledger.

use crate::metrics::{Metrics, SseClient};
use crate::runs::{Live, Manager};
use axum::response::sse::Event;
use praxis_core::RunStatus;
use praxis_core::record::Delta;
use praxis_ledger::{ENTRIES_CHANNEL, Entry, Notice, RUN_FINISHED_KIND};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

pub(crate) struct Feed {
    run_id: String,
    manager: Arc<Manager>,
    rx: Option<broadcast::Receiver<Live>>,
    /// On a shared PostgreSQL ledger: commit notifications, so a run driven by another
    /// server is read again as soon as it grows (the poll interval is only the fallback).
    notices: Option<broadcast::Receiver<Notice>>,
    last_seq: u64,
    backlog: VecDeque<Entry>,
    replayed: bool,
    finished: bool,
    done: bool,
    shutdown: watch::Receiver<bool>,
    poll: Duration,
    metrics: Arc<Metrics>,
    _client: SseClient,
}

impl Feed {
    pub fn new(
        run_id: String,
        after: u64,
        manager: Arc<Manager>,
        shutdown: watch::Receiver<bool>,
        poll: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Subscribe before the ledger is read (see the module docs).
        let rx = manager.subscribe(&run_id);
        let notices = manager.cluster.as_ref().and_then(|c| c.pg.subscribe());
        Feed {
            run_id,
            rx,
            notices,
            last_seq: after,
            backlog: VecDeque::new(),
            replayed: false,
            finished: false,
            done: false,
            shutdown,
            poll,
            _client: SseClient::new(metrics.clone()),
            metrics,
            manager,
        }
    }

    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<Event, Infallible>> {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next().await.map(|event| (Ok(event), feed))
        })
    }

    async fn read(&mut self) {
        let ledger = self.manager.ledger.clone();
        let (run_id, after) = (self.run_id.clone(), self.last_seq);
        match tokio::task::spawn_blocking(move || ledger.entries(&run_id, after)).await {
            Ok(Ok(entries)) => self.backlog.extend(entries),
            Ok(Err(e)) => {
                eprintln!("praxis serve: feed of run {}: {e}", self.run_id);
                self.done = true;
            }
            Err(e) => {
                eprintln!("praxis serve: feed of run {}: {e}", self.run_id);
                self.done = true;
            }
        }
    }

    /// Whether a run not driven by this server may still grow: its driver (another
    /// process) is alive.
    async fn driven_elsewhere(&self) -> bool {
        if self.manager.ghost(&self.run_id).is_some() {
            return false;
        }
        let ledger = self.manager.ledger.clone();
        let run_id = self.run_id.clone();
        let shared = self.manager.cluster.is_some();
        let status = tokio::task::spawn_blocking(move || {
            let entries = ledger.entries(&run_id, 0).ok()?;
            crate::runs::row_of(&entries).map(|row| praxis_runtime::overview(&row).status)
        })
        .await
        .ok()
        .flatten();
        // On a shared ledger an interrupted run is one another server is about to take
        // over (its lease decides): it may grow again.
        matches!(
            status,
            Some(RunStatus::Running | RunStatus::AwaitingApproval)
        ) || (shared && status == Some(RunStatus::Interrupted))
    }

    /// Waits for a commit notification about this run (forever without notifications).
    async fn grown(notices: &mut Option<broadcast::Receiver<Notice>>, run_id: &str) {
        let Some(rx) = notices.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match rx.recv().await {
                Ok(n) if n.channel == ENTRIES_CHANNEL && n.run_id() == run_id => return,
                Ok(_) => {}
                // Missed some: read the table anyway (it has everything, by seq).
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
            }
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(entry) = self.backlog.pop_front() {
                if entry.seq <= self.last_seq {
                    continue;
                }
                self.last_seq = entry.seq;
                if entry.kind == RUN_FINISHED_KIND {
                    self.finished = true;
                }
                return Some(entry_event(&entry));
            }
            if self.done {
                return None;
            }
            if !self.replayed {
                self.replayed = true;
                self.read().await;
                continue;
            }
            let mut shutdown = self.shutdown.clone();
            match self.rx.as_mut() {
                // A live run's feed goes on through a shutdown: the run is cancelled and
                // its followers see the `run_finished` that says so, then `Done`.
                Some(rx) => {
                    match rx.recv().await {
                        Ok(Live::Entry(entry)) => {
                            if entry.seq == self.last_seq + 1 {
                                self.backlog.push_back((*entry).clone());
                            } else if entry.seq > self.last_seq {
                                // Cannot happen without a lag report, but the ledger knows.
                                self.read().await;
                            }
                        }
                        Ok(Live::Delta(text)) => {
                            return Some(
                                Event::default().event("delta").data(
                                    serde_json::to_string(&Delta {
                                        text: text.to_string(),
                                    })
                                    .unwrap_or_default(),
                                ),
                            );
                        }
                        Ok(Live::Done) | Err(broadcast::error::RecvError::Closed) => {
                            self.rx = None;
                            self.read().await;
                            self.done = true;
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Too slow for the live channel: end here; the client resumes
                            // from the ledger with Last-Event-ID.
                            self.metrics.sse_dropped();
                            self.done = true;
                        }
                    }
                }
                None => {
                    if self.finished || *shutdown.borrow() || !self.driven_elsewhere().await {
                        // One last read: the checkpoint after `run_finished` may have landed.
                        self.read().await;
                        self.done = true;
                        continue;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll) => {}
                        () = Self::grown(&mut self.notices, &self.run_id) => {}
                        _ = shutdown.wait_for(|stop| *stop) => {
                            self.done = true;
                            continue;
                        }
                    }
                    self.read().await;
                }
            }
        }
    }
}

/// One ledger entry as an event: `id` = seq, `event` = kind, `data` = the export line.
pub(crate) fn entry_event(entry: &Entry) -> Event {
    let data = serde_json::to_string(entry).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(entry.seq.to_string())
        .event(&entry.kind)
        .data(data)
}
