//! The OpenTelemetry trace sink (cargo feature `otel`): a run's event stream as spans by
//! the GenAI semantic conventions, exported over OTLP/HTTP (protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! - one `invoke_agent praxis` span per run (kind internal; a sub-run's is a child of its
//!   parent run's), with `gen_ai.operation.name`, `gen_ai.agent.name`,
//!   `gen_ai.conversation.id` (the run id), `gen_ai.provider.name` (and `gen_ai.system`,
//!   its name before semantic conventions 1.37), `gen_ai.request.model` and, at the end,
//!   the run's `gen_ai.usage.input_tokens` / `output_tokens`;
//! - a child `chat {model}` span per model call (kind client) from the call's start to its
//!   reply, with the reply's model (`gen_ai.response.model`) and tokens; a failed call has
//!   status error and `error.type`;
//! - a child `execute_tool {tool}` span per tool execution (kind internal), timed by the
//!   execution record, with `gen_ai.tool.name`, `gen_ai.tool.call.id`, `gen_ai.tool.type`.
//!
//! Everything comes from the records the run makes durable (`LiveEvent::Entry`) and the
//! model-call start event: the spans say what the ledger says. Times are the records'.
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` set the resource (service name
//! `praxis` by default); `OTEL_SDK_DISABLED=true` turns the sink off.

use crate::LiveEvent;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use praxis_core::record::Record;
use praxis_core::{ExecStatus, Millis, RunStatus};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// The agent name on `invoke_agent` spans.
const AGENT: &str = "praxis";

/// Why the sink could not start (printed once, the runs go on untraced).
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: the OTLP/HTTP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL is `{0}`: praxis exports over OTLP/HTTP only \
         (`http/protobuf`)"
    )]
    Protocol(String),
}

/// Spans of the runs in progress, exported by a batch processor (its own thread).
pub struct TraceSink {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    runs: Mutex<HashMap<String, RunSpans>>,
}

/// An open run span and what its children need.
struct RunSpans {
    cx: Context,
    provider: String,
    /// The model the run asked for.
    model: String,
    /// The model call under way: its step and when it started.
    call: Option<(u32, SystemTime)>,
}

fn at(millis: Millis) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl TraceSink {
    /// The process's sink: made on first use from the environment; None when no OTLP
    /// endpoint is set or the exporter cannot be built (said once on stderr).
    pub fn global() -> Option<&'static TraceSink> {
        static SINK: OnceLock<Option<TraceSink>> = OnceLock::new();
        SINK.get_or_init(|| {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
            match TraceSink::from_env(&env) {
                Ok(sink) => sink,
                Err(e) => {
                    eprintln!("praxis: OpenTelemetry traces are off: {e}");
                    None
                }
            }
        })
        .as_ref()
    }

    /// A sink exporting to the OTLP endpoint of the `OTEL_*` variables `env` reads (None
    /// when neither `OTEL_EXPORTER_OTLP_ENDPOINT` nor `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// is set, or `OTEL_SDK_DISABLED` is `true`). The exporter reads the endpoint, headers
    /// and timeout variables itself.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<TraceSink>, OtelError> {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        if env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(protocol) = protocol.filter(|p| p.trim() != "http/protobuf") {
            return Err(OtelError::Protocol(protocol));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if env("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(AGENT);
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("praxis");
        Ok(Some(TraceSink {
            provider,
            tracer,
            runs: Mutex::new(HashMap::new()),
        }))
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunSpans>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what is buffered; waits on a blocking thread, not on the caller's.
    pub async fn flush(&'static self) {
        let provider = self.provider.clone();
        let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("praxis: OpenTelemetry: exporting spans failed: {e}");
        }
    }

    /// One event of run `run_id`.
    pub(crate) fn on_event(&self, run_id: &str, event: &LiveEvent<'_>) {
        match event {
            LiveEvent::ModelCall { step } => {
                if let Some(run) = self.runs().get_mut(run_id) {
                    run.call = Some((*step, SystemTime::now()));
                }
            }
            LiveEvent::Entry(entry) => {
                if let Ok(record) = Record::from_entry(&entry.kind, &entry.payload) {
                    self.on_record(run_id, record);
                }
            }
            _ => {}
        }
    }

    fn on_record(&self, run_id: &str, record: Record) {
        let mut runs = self.runs();
        match record {
            Record::RunStarted(started) => {
                let parent = started
                    .parent()
                    .and_then(|p| runs.get(&p.run_id).map(|r| r.cx.clone()))
                    .unwrap_or_default();
                let spec = &started.spec;
                let cx = self.run_span(run_id, &parent, &spec.provider, &spec.model, started.now);
                runs.insert(
                    run_id.to_string(),
                    RunSpans {
                        cx,
                        provider: spec.provider.clone(),
                        model: spec.model.clone(),
                        call: None,
                    },
                );
            }
            Record::RunResumed(resumed) => {
                // Taken up by this process (after a crash, or a dropped run future whose
                // span is still open here): the resumed part is a span of its own if needed.
                let run = runs.entry(run_id.to_string()).or_insert_with(|| RunSpans {
                    cx: self.run_span(run_id, &Context::new(), "", "", resumed.now),
                    provider: String::new(),
                    model: String::new(),
                    call: None,
                });
                run.cx.span().add_event_with_timestamp(
                    "run_resumed",
                    at(resumed.now),
                    vec![KeyValue::new(
                        "praxis.waiting_for",
                        format!("{:?}", resumed.waiting_for),
                    )],
                );
            }
            Record::ModelResponse(reply) => {
                let Some(run) = runs.get_mut(run_id) else {
                    return;
                };
                let start = started(run, reply.step, reply.now);
                let mut attributes = chat_attributes(run, reply.step);
                attributes.extend([
                    KeyValue::new("gen_ai.response.model", reply.model.clone()),
                    KeyValue::new(
                        "gen_ai.usage.input_tokens",
                        tokens(reply.usage.input_tokens),
                    ),
                    KeyValue::new(
                        "gen_ai.usage.output_tokens",
                        tokens(reply.usage.output_tokens),
                    ),
                ]);
                let mut span = self.child(
                    run,
                    format!("chat {}", reply.model),
                    SpanKind::Client,
                    start,
                    attributes,
                );
                span.end_with_timestamp(at(reply.now));
            }
            Record::ModelError(failed) => {
                let Some(run) = runs.get_mut(run_id) else {
                    return;
                };
                let start = started(run, failed.step, failed.now);
                let mut attributes = chat_attributes(run, failed.step);
                attributes.push(KeyValue::new("error.type", "model_error"));
                let name = format!("chat {}", run.model);
                let mut span = self.child(run, name, SpanKind::Client, start, attributes);
                span.set_status(Status::error(failed.error.clone()));
                span.end_with_timestamp(at(failed.now));
            }
            Record::Execution(exec) => {
                let Some(run) = runs.get_mut(run_id) else {
                    return;
                };
                let end = at(exec.now);
                let start = end
                    .checked_sub(Duration::from_millis(exec.duration_ms))
                    .unwrap_or(end);
                let attributes = vec![
                    KeyValue::new("gen_ai.operation.name", "execute_tool"),
                    KeyValue::new("gen_ai.tool.name", exec.tool.clone()),
                    KeyValue::new("gen_ai.tool.call.id", exec.call_id.clone()),
                    KeyValue::new("gen_ai.tool.type", "function"),
                    KeyValue::new("praxis.tool.status", exec.status.as_str()),
                ];
                let mut span = self.child(
                    run,
                    format!("execute_tool {}", exec.tool),
                    SpanKind::Internal,
                    start,
                    attributes,
                );
                if exec.status != ExecStatus::Ok {
                    span.set_attribute(KeyValue::new("error.type", exec.status.as_str()));
                    span.set_status(Status::error(format!(
                        "the tool's status is {}",
                        exec.status.as_str()
                    )));
                }
                span.end_with_timestamp(end);
            }
            Record::RunFinished(finished) => {
                let Some(run) = runs.remove(run_id) else {
                    return;
                };
                let span = run.cx.span();
                span.set_attribute(KeyValue::new(
                    "gen_ai.usage.input_tokens",
                    tokens(finished.usage.input_tokens),
                ));
                span.set_attribute(KeyValue::new(
                    "gen_ai.usage.output_tokens",
                    tokens(finished.usage.output_tokens),
                ));
                span.set_attribute(KeyValue::new("praxis.run.status", finished.status.as_str()));
                span.set_attribute(KeyValue::new(
                    "praxis.run.stop_reason",
                    finished.stop_reason.as_str(),
                ));
                if finished.status != RunStatus::Completed {
                    span.set_attribute(KeyValue::new("error.type", finished.stop_reason.as_str()));
                    span.set_status(Status::error(
                        finished
                            .error
                            .clone()
                            .unwrap_or_else(|| finished.status.as_str().to_string()),
                    ));
                }
                span.end_with_timestamp(at(finished.now));
            }
            _ => {}
        }
    }

    fn run_span(
        &self,
        run_id: &str,
        parent: &Context,
        provider: &str,
        model: &str,
        now: Millis,
    ) -> Context {
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.name", AGENT),
            KeyValue::new("gen_ai.conversation.id", run_id.to_string()),
        ];
        if !provider.is_empty() {
            attributes.push(KeyValue::new("gen_ai.provider.name", provider.to_string()));
            attributes.push(KeyValue::new("gen_ai.system", provider.to_string()));
        }
        if !model.is_empty() {
            attributes.push(KeyValue::new("gen_ai.request.model", model.to_string()));
        }
        let span = self
            .tracer
            .span_builder(format!("invoke_agent {AGENT}"))
            .with_kind(SpanKind::Internal)
            .with_start_time(at(now))
            .with_attributes(attributes)
            .start_with_context(&self.tracer, parent);
        parent.with_span(span)
    }

    fn child(
        &self,
        run: &RunSpans,
        name: String,
        kind: SpanKind,
        start: SystemTime,
        attributes: Vec<KeyValue>,
    ) -> opentelemetry_sdk::trace::Span {
        self.tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &run.cx)
    }
}

/// When model call `step` started (the reply's time if its start was not seen).
fn started(run: &mut RunSpans, step: u32, reply: Millis) -> SystemTime {
    match run.call.take() {
        Some((s, start)) if s == step => start.min(at(reply)),
        _ => at(reply),
    }
}

/// The attributes of a `chat` span of `run`.
fn chat_attributes(run: &RunSpans, step: u32) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("praxis.step", i64::from(step)),
    ];
    if !run.provider.is_empty() {
        attributes.push(KeyValue::new("gen_ai.provider.name", run.provider.clone()));
        attributes.push(KeyValue::new("gen_ai.system", run.provider.clone()));
    }
    if !run.model.is_empty() {
        attributes.push(KeyValue::new("gen_ai.request.model", run.model.clone()));
    }
    attributes
}
