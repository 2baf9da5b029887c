//! A run's driver task: the lease on a shared ledger, the run (here or placed elsewhere),
//! and what its end frees.

use super::*;

impl Manager {
    pub(super) fn start(
        self: &Arc<Self>,
        inner: &mut Inner,
        run_id: String,
        tenant: String,
        hub: Arc<Hub>,
        mut options: RunOptions,
        job: Job,
    ) {
        let cancel = options.cancel.clone();
        let lost = cancel.clone();
        options.run_id = Some(run_id.clone());
        hub.set("starting", None);
        *inner.by_tenant.entry(tenant.clone()).or_default() += 1;
        inner.active.insert(
            run_id.clone(),
            Active {
                tenant: tenant.clone(),
                hub: hub.clone(),
                cancel,
                spec: options.spec.clone(),
                since: praxis_ledger::now_rfc3339(),
            },
        );
        self.metrics.set_active_runs(inner.active.len());
        let manager = self.clone();
        let provider_lane = self.provider_lane(&options.spec.provider);
        let cancel = options.cancel.clone();
        tokio::spawn(async move {
            // The provider's bound: wait for its lane (tenants in turn); a run cancelled
            // while it waits goes on to record its cancellation.
            let _provider_slot = match &provider_lane {
                Some(lane) => {
                    hub.set("waiting_for_provider", None);
                    let permit = tokio::select! {
                        permit = lane.acquire(&tenant) => Some(permit),
                        _ = cancel.wait() => None,
                    };
                    hub.set("starting", None);
                    permit
                }
                None => None,
            };
            let observer = HubObserver {
                run_id: run_id.clone(),
                tenant: tenant.clone(),
                hub: hub.clone(),
                tokens: manager.tokens.clone(),
                metrics: manager.metrics.clone(),
            };
            let spec = options.spec.clone();
            // A new run placed elsewhere (a Kubernetes Job): its pod records it; no lease
            // here, the pod's appends must not be fenced off.
            if let (Job::Start, Some(executor)) = (&job, manager.executor.get().cloned()) {
                let end = executor.drive(run_id.clone(), options, hub.clone()).await;
                manager.forget_accepted(&run_id);
                manager.finish_remote(&run_id, &tenant, &spec, end);
                return;
            }
            let accepted = matches!(job, Job::Start);
            // On a shared ledger, the lease first: exactly one server drives a run.
            let mut renewing = None;
            // Nothing was written: the run stays as its ledger (or another server) has it.
            let refuse = |why: &str| {
                let refused = RuntimeError::NotResumable {
                    run_id: run_id.clone(),
                    why: why.to_string(),
                };
                manager.finish(&run_id, &tenant, &spec, Err(refused));
            };
            if let Some(cluster) = manager.cluster.clone() {
                match cluster.acquire(&run_id).await {
                    Ok(true) => {
                        // A new run another server started meanwhile (this one was taken
                        // for dead while the run waited here) is not started twice.
                        if matches!(job, Job::Start) && manager.has_entries(&run_id).await {
                            cluster.release(&run_id).await;
                            refuse("another server started it");
                            return;
                        }
                        renewing = Some(cluster.keep(run_id.clone(), move || {
                            lost.cancel(
                                "another server took the run over (this server's lease expired)",
                            )
                        }));
                    }
                    Ok(false) => {
                        refuse("another server drives it (it holds the run's lease)");
                        return;
                    }
                    Err(source) => {
                        let failed = RuntimeError::Ledger {
                            run_id: run_id.clone(),
                            source: Box::new(source),
                        };
                        manager.finish(&run_id, &tenant, &spec, Err(failed));
                        return;
                    }
                }
            }
            let result = match job {
                Job::Start => manager.runtime.run(options, &observer).await,
                Job::Resume => manager.runtime.resume(&run_id, options, &observer).await,
                Job::Branch(from) => manager
                    .runtime
                    .branch(*from, options, &observer)
                    .await
                    .map(|(report, point)| {
                        if !point.missing.is_empty() {
                            eprintln!(
                                "praxis serve: branch {run_id}: {} file(s) of the origin's world had no recorded content and are missing from its workspace: {}",
                                point.missing.len(),
                                point.missing.join(", ")
                            );
                        }
                        report
                    }),
            };
            if let (Some(stop), Some(cluster)) = (renewing, manager.cluster.clone()) {
                let _ = stop.send(());
                cluster.release(&run_id).await;
            }
            if accepted {
                manager.forget_accepted(&run_id);
            }
            manager.finish(&run_id, &tenant, &spec, result);
        });
    }

    /// Whether the ledger holds any entry of `run_id` (an unreadable ledger says yes: the
    /// caller then does not start the run).
    async fn has_entries(&self, run_id: &str) -> bool {
        let (ledger, run_id) = (self.ledger.clone(), run_id.to_string());
        tokio::task::spawn_blocking(move || ledger.entries(&run_id, 0).map(|e| !e.is_empty()))
            .await
            .map_or(true, |read| read.unwrap_or(true))
    }

    /// The run ended (or was cancelled before it started): its accepted request is no
    /// longer needed. Off the async threads; a failure only leaves a row that the next
    /// start prunes.
    pub(super) fn forget_accepted(&self, run_id: &str) {
        let (tokens, run_id) = (self.tokens.clone(), run_id.to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = tokens.forget_accepted(&run_id) {
                eprintln!("praxis serve: run {run_id}: forgetting its accepted request: {e}");
            }
        });
    }

    pub(super) fn finish(
        self: &Arc<Self>,
        run_id: &str,
        tenant: &str,
        spec: &praxis_core::RunSpec,
        result: Result<RunReport, RuntimeError>,
    ) {
        let mut inner = self.inner();
        let active = self.release(&mut inner, run_id, tenant);
        if let Err(RuntimeError::NotResumable { why, .. }) = &result {
            // Nothing was written: the run stays as its ledger says.
            eprintln!("praxis serve: run {run_id} was not resumed: {why}");
            inner
                .recovered
                .insert(run_id.to_string(), format!("resume refused: {why}"));
        } else if let Err(error) = result {
            // No `run_finished` was written: without this the run would look like it is
            // still running for as long as this process lives.
            eprintln!("praxis serve: run {run_id} failed: {error}");
            let ghost = Ghost::of(tenant, spec, RunStatus::Failed, error.to_string());
            inner.ghosts.insert(run_id, ghost);
        } else if let Some(mut view) = active.and_then(|a| {
            a.hub
                .with_digest(|d| d.ended_at().and_then(|_| d.view(tenant.to_string())))
                .flatten()
        }) {
            view.recovery = inner.recovered.get(run_id).cloned();
            let tenant = tenant.to_string();
            inner.ended.insert(run_id, Ended { tenant, view });
        }
        self.settle(inner);
    }

    /// A run placed elsewhere ended; `end` says how when its ledger does not.
    fn finish_remote(
        self: &Arc<Self>,
        run_id: &str,
        tenant: &str,
        spec: &praxis_core::RunSpec,
        end: crate::executor::RemoteEnd,
    ) {
        let mut inner = self.inner();
        let _ = self.release(&mut inner, run_id, tenant);
        if let Some((status, why)) = end {
            eprintln!(
                "praxis serve: run {run_id} ended {}: {why}",
                status.as_str()
            );
            inner
                .ghosts
                .insert(run_id, Ghost::of(tenant, spec, status, why));
        }
        self.settle(inner);
    }

    /// A run's slot is free: its followers are told it is done. What it was while active.
    fn release(&self, inner: &mut Inner, run_id: &str, tenant: &str) -> Option<Active> {
        let active = inner.active.remove(run_id);
        if let Some(active) = &active {
            active.hub.set("finished", None);
            active.hub.send(Live::Done);
        }
        if let Some(count) = inner.by_tenant.get_mut(tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.by_tenant.remove(tenant);
            }
        }
        active
    }

    /// After a run ended: queued runs start, the gauges follow, shutdown's wait wakes.
    pub(super) fn settle(self: &Arc<Self>, mut inner: MutexGuard<'_, Inner>) {
        self.schedule(&mut inner);
        self.metrics.set_active_runs(inner.active.len());
        self.metrics.set_queue_depth(inner.queue.len());
        drop(inner);
        self.finished.notify_waiters();
    }
}
