//! A fake Kubernetes API server for tests (cargo feature `fake-api`): just the endpoints
//! the executor calls — create/delete Secret, create/get/watch/delete Job — over plain
//! HTTP on 127.0.0.1:0, recording every request. No live cluster can run where this
//! repository is tested; this is what the client is tested against. Objects are kept as
//! JSON exactly as received (plus a `resourceVersion`), so a test compares what was sent
//! with what the builder makes.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;

/// One request the fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub method: String,
    /// `secrets` or `jobs`.
    pub resource: String,
    pub namespace: String,
    /// The object's name (None for create and watch).
    pub name: Option<String>,
    /// The JSON body (Null when there was none).
    pub body: Value,
}

#[derive(Default)]
struct Store {
    requests: Vec<Recorded>,
    /// (resource, namespace, name) -> object.
    objects: HashMap<(String, String, String), Value>,
    version: u64,
    refuse_jobs: bool,
}

struct Shared {
    store: Mutex<Store>,
    /// Watch events: (namespace, name, event).
    events: broadcast::Sender<(String, String, Value)>,
}

impl Shared {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake; stops when dropped.
pub struct FakeApi {
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn parse(body: &Bytes) -> Value {
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }
}

async fn create(
    State(shared): State<Arc<Shared>>,
    resource: &str,
    namespace: String,
    body: Bytes,
) -> Response {
    let mut object = parse(&body);
    let mut store = shared.store();
    store.requests.push(Recorded {
        method: "POST".into(),
        resource: resource.into(),
        namespace: namespace.clone(),
        name: None,
        body: object.clone(),
    });
    if resource == "jobs" && store.refuse_jobs {
        return status(403, "Forbidden", "jobs are refused by this fake".into());
    }
    let Some(name) = object["metadata"]["name"].as_str().map(String::from) else {
        return status(422, "Invalid", "metadata.name is required".into());
    };
    let key = (resource.to_string(), namespace, name.clone());
    if store.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            format!("{resource} {name} already exists"),
        );
    }
    store.version += 1;
    object["metadata"]["resourceVersion"] = json!(store.version.to_string());
    store.objects.insert(key, object.clone());
    (StatusCode::CREATED, axum::Json(object)).into_response()
}

async fn create_secret(
    state: State<Arc<Shared>>,
    Path(namespace): Path<String>,
    body: Bytes,
) -> Response {
    create(state, "secrets", namespace, body).await
}

async fn create_job(
    state: State<Arc<Shared>>,
    Path(namespace): Path<String>,
    body: Bytes,
) -> Response {
    create(state, "jobs", namespace, body).await
}

fn delete(
    shared: &Shared,
    resource: &str,
    namespace: String,
    name: String,
    body: Bytes,
) -> Response {
    let mut store = shared.store();
    store.requests.push(Recorded {
        method: "DELETE".into(),
        resource: resource.into(),
        namespace: namespace.clone(),
        name: Some(name.clone()),
        body: parse(&body),
    });
    match store
        .objects
        .remove(&(resource.to_string(), namespace.clone(), name.clone()))
    {
        Some(object) => {
            if resource == "jobs" {
                let _ = shared.events.send((
                    namespace,
                    name,
                    json!({"type": "DELETED", "object": object}),
                ));
            }
            (StatusCode::OK, axum::Json(object)).into_response()
        }
        None => status(404, "NotFound", format!("{resource} \"{name}\" not found")),
    }
}

async fn delete_secret(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    delete(&shared, "secrets", namespace, name, body)
}

async fn delete_job(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    delete(&shared, "jobs", namespace, name, body)
}

async fn get_job(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let mut store = shared.store();
    store.requests.push(Recorded {
        method: "GET".into(),
        resource: "jobs".into(),
        namespace: namespace.clone(),
        name: Some(name.clone()),
        body: Value::Null,
    });
    match store.objects.get(&("jobs".into(), namespace, name.clone())) {
        Some(job) => axum::Json(job.clone()).into_response(),
        None => status(404, "NotFound", format!("jobs \"{name}\" not found")),
    }
}

/// `GET …/jobs?watch=true&fieldSelector=metadata.name=NAME&resourceVersion=V`: the job as
/// MODIFIED first if it changed after V, then every change, as JSON lines.
async fn watch_jobs(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if query.get("watch").map(String::as_str) != Some("true") {
        return status(
            405,
            "MethodNotAllowed",
            "this fake only watches jobs".into(),
        );
    }
    let name = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(String::from);
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let rx = shared.events.subscribe();
    let mut first = Vec::new();
    {
        let mut store = shared.store();
        store.requests.push(Recorded {
            method: "WATCH".into(),
            resource: "jobs".into(),
            namespace: namespace.clone(),
            name: name.clone(),
            body: Value::Null,
        });
        for ((resource, ns, n), object) in &store.objects {
            let version: u64 = object["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if resource == "jobs"
                && *ns == namespace
                && name.as_ref().is_none_or(|want| want == n)
                && version > since
            {
                first.push(json!({"type": "MODIFIED", "object": object}));
            }
        }
    }
    if let Some(name) = &name {
        let gone =
            !shared
                .store()
                .objects
                .contains_key(&("jobs".into(), namespace.clone(), name.clone()));
        if gone {
            // Deleted before the watch began: end it (the client reads again and sees 404).
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::empty())
                .unwrap_or_else(|_| status(500, "InternalError", "response".into()));
        }
    }
    let stream = futures_util::stream::unfold(
        (first.into_iter(), rx, namespace, name),
        |(mut first, mut rx, namespace, name)| async move {
            let event = match first.next() {
                Some(event) => event,
                None => loop {
                    match rx.recv().await {
                        Ok((ns, n, event))
                            if ns == namespace && name.as_ref().is_none_or(|want| *want == n) =>
                        {
                            break event;
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                },
            };
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            Some((
                Ok::<_, std::io::Error>(Bytes::from(line)),
                (first, rx, namespace, name),
            ))
        },
    );
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| status(500, "InternalError", "response".into()))
}

impl FakeApi {
    /// Starts the fake on 127.0.0.1:0 in a thread of its own (usable from sync and async
    /// tests alike).
    pub fn start() -> FakeApi {
        let (events, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            events,
        });
        let app = Router::new()
            .route("/api/v1/namespaces/{ns}/secrets", post(create_secret))
            .route(
                "/api/v1/namespaces/{ns}/secrets/{name}",
                axum::routing::delete(delete_secret),
            )
            .route(
                "/apis/batch/v1/namespaces/{ns}/jobs",
                post(create_job).get(watch_jobs),
            )
            .route(
                "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
                get(get_job).delete(delete_job),
            )
            .with_state(shared.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fake API server");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                let _ = addr_tx.send(listener.local_addr().expect("local address"));
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().expect("the fake API server started");
        FakeApi {
            url: format!("http://{addr}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.store().requests.clone()
    }

    /// The object `resource`/`name` in `namespace` as stored (None: absent or deleted).
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .store()
            .objects
            .get(&(resource.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// Sets the Job's `status` (as the Job controller would) and tells its watchers.
    pub fn set_job_status(&self, namespace: &str, name: &str, job_status: Value) -> bool {
        let mut store = self.shared.store();
        store.version += 1;
        let version = store.version.to_string();
        let key = ("jobs".to_string(), namespace.to_string(), name.to_string());
        let Some(job) = store.objects.get_mut(&key) else {
            return false;
        };
        job["status"] = job_status;
        job["metadata"]["resourceVersion"] = json!(version);
        let event = json!({"type": "MODIFIED", "object": job.clone()});
        let _ = self
            .shared
            .events
            .send((namespace.into(), name.into(), event));
        true
    }

    /// Makes Job creation fail (403) from now on.
    pub fn refuse_jobs(&self) {
        self.shared.store().refuse_jobs = true;
    }

    /// A kubeconfig whose current context is this fake, in `namespace`.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            url = self.url
        )
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Open watches end with the runtime; do not wait for a client that keeps one.
        drop(self.thread.take());
    }
}
