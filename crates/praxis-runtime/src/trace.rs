//! The trace sink's one place: every top-level run, resume and branch goes through these
//! wrappers, which hand the run's event stream to the OpenTelemetry sink (cargo feature
//! `otel`, active when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) besides the caller's observer,
//! and flush the spans when the run returns. Sub-runs (`delegate`) share their parent's
//! observer, so their events reach the sink once. Without the feature this is a plain
//! pass-through.

use crate::branch::{BranchFrom, BranchPoint};
use crate::{LiveEvent, RunObserver, RunOptions, RunReport, Runtime, RuntimeError};

impl Runtime {
    /// Runs one task to its end. The returned report mirrors the `run_finished` entry.
    pub async fn run(
        &self,
        options: RunOptions,
        observer: &dyn RunObserver,
    ) -> Result<RunReport, RuntimeError> {
        let traced = Traced::new(observer);
        let report = self.run_observed(options, &traced).await;
        traced.flush().await;
        report
    }

    /// Takes over run `run_id` after its driver died (crash recovery, a dropped run
    /// future): the kernel is restored by replaying the record, then goes on appending to
    /// the same chain. A model call that was in flight is asked again; a tool call that was
    /// in flight is not re-run unless it is read-only or `options.approver` approves (see
    /// [`praxis_core::Event::Resume`]). The run keeps its recorded spec and workspace;
    /// `options.spec` is ignored. Without `options.writ` the writ recorded at run start
    /// (verified then) keeps governing.
    pub async fn resume(
        &self,
        run_id: &str,
        options: RunOptions,
        observer: &dyn RunObserver,
    ) -> Result<RunReport, RuntimeError> {
        let traced = Traced::new(observer);
        let report = self.resume_observed(run_id, options, &traced).await;
        traced.flush().await;
        report
    }

    /// Starts a new run whose history is run `from.run_id`'s up to the last model call at
    /// or before entry `from.at` (linked by seq and hash, not copied), in a new workspace
    /// holding the origin's world at that point, and continues it live with
    /// `options.provider`. Without `options.writ` the branch acts under the origin's writ as
    /// recorded.
    pub async fn branch(
        &self,
        from: BranchFrom,
        options: RunOptions,
        observer: &dyn RunObserver,
    ) -> Result<(RunReport, BranchPoint), RuntimeError> {
        let traced = Traced::new(observer);
        let report = self.branch_observed(from, options, &traced).await;
        traced.flush().await;
        report
    }
}

/// The caller's observer, and the trace sink when there is one.
struct Traced<'o> {
    observer: &'o dyn RunObserver,
    #[cfg(feature = "otel")]
    sink: Option<&'static crate::otel::TraceSink>,
}

impl<'o> Traced<'o> {
    fn new(observer: &'o dyn RunObserver) -> Self {
        Traced {
            observer,
            #[cfg(feature = "otel")]
            sink: crate::otel::TraceSink::global(),
        }
    }

    /// Sends the spans still buffered (off the async threads).
    async fn flush(&self) {
        #[cfg(feature = "otel")]
        if let Some(sink) = self.sink {
            sink.flush().await;
        }
    }
}

impl RunObserver for Traced<'_> {
    fn on_event(&self, run_id: &str, event: LiveEvent<'_>) {
        #[cfg(feature = "otel")]
        if let Some(sink) = self.sink {
            sink.on_event(run_id, &event);
        }
        self.observer.on_event(run_id, event);
    }
}
