//! A run's history over HTTP: world, diff, replay and branch.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn world_diff_replay_and_branch_over_http() {
    let h = Harness::start(|_| {}).await;
    let origin = h.create(write_script(), json!({"approve": "auto"})).await;
    let view = h.wait_status(&origin, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed", "{view}");
    let entries = h.export(&origin).await;
    let last = entries.len() as u64;
    let first_reply = first_seq(&entries, "model_response");
    let executed = first_seq(&entries, "execution");

    // The listing at the end: what the run changed, and every file with its blob.
    let (status, world) = h.get(&format!("/v1/runs/{origin}/world")).await;
    assert_eq!(status, StatusCode::OK, "{world}");
    assert_eq!(world["run_id"], origin);
    assert_eq!(world["at"], last);
    assert_eq!(world["changed"], json!(["out.txt"]));
    assert!(world["files"]["out.txt"].is_string(), "{world}");
    assert!(world["files"]["README.md"].is_string(), "{world}");
    // Before the write executed, the file did not exist.
    let (status, before) = h
        .get(&format!("/v1/runs/{origin}/world?at={}", executed - 1))
        .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["changed"], json!([]));
    assert!(before["files"].get("out.txt").is_none(), "{before}");

    // One file's content, as text; a file that did not exist then is a 404 naming `path`.
    let r = h
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{origin}/world?at={executed}&path=out.txt"),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().await.unwrap(), "written\n");
    let (status, err) = h
        .get(&format!("/v1/runs/{origin}/world?at=1&path=out.txt"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["field"], "path");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("did not exist at seq 1")
    );

    // The diff from the start, as `praxis world --diff` prints it.
    let (status, diff) = h.get(&format!("/v1/runs/{origin}/world?diff=true")).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let text = diff["diff"].as_str().unwrap();
    assert!(text.contains("--- /dev/null"), "{text}");
    assert!(text.contains("+++ b/out.txt"), "{text}");
    assert!(text.contains("+written"), "{text}");
    let (_, early) = h
        .get(&format!(
            "/v1/runs/{origin}/world?diff=true&at={}",
            executed - 1
        ))
        .await;
    assert_eq!(early["diff"], "", "nothing changed yet: {early}");

    // Bad inputs name their field; unknown runs are 404.
    for (query, field) in [
        ("at=abc", "at"),
        ("at=0", "at"),
        (&*format!("at={}", last + 1), "at"),
        ("diff=maybe", "diff"),
        ("diff=true&path=out.txt", "diff"),
    ] {
        let (status, err) = h.get(&format!("/v1/runs/{origin}/world?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {err}");
        assert_eq!(err["field"], field, "{query}: {err}");
    }
    for path in [
        "/v1/runs/01nosuchrun/world".to_string(),
        format!("/v1/runs/01nosuchrun/diff/{origin}"),
        format!("/v1/runs/{origin}/diff/01nosuchrun"),
    ] {
        let (status, err) = h.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {err}");
    }
    for path in ["/v1/runs/01nosuchrun/replay", "/v1/runs/01nosuchrun/branch"] {
        let (status, err) = h.post(path, json!({"at": 1})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {err}");
    }

    // Replay re-derives every entry.
    let (status, replayed) = h
        .post(&format!("/v1/runs/{origin}/replay"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["status"], "matched", "{replayed}");
    assert_eq!(replayed["entries"], last);
    assert_eq!(replayed["run_id"], origin);
    assert_eq!(replayed["unfinished"], Value::Null);

    // Branch errors are refused before anything starts.
    let other_script = json!({"turns": [
        {"content": "", "tool_calls": [{"id": "w1", "name": "fs_write", "arguments": {"path": "out.txt", "content": "branched\n"}}]},
        {"content": "wrote another out.txt"},
    ]});
    let branch_path = format!("/v1/runs/{origin}/branch");
    let mut bad: Vec<(Value, &str)> = vec![
        (json!({"script": other_script}), "at"),
        (json!({"at": 0, "script": other_script}), "at"),
        (json!({"at": last + 1, "script": other_script}), "at"),
        (json!({"at": "two", "script": other_script}), "at"),
        (
            json!({"at": first_reply - 1, "provider": "nonesuch"}),
            "provider",
        ),
        (
            json!({"at": first_reply - 1, "script": {"turns": 3}}),
            "script",
        ),
        (
            json!({"at": first_reply - 1, "script": other_script, "max_steps": 0}),
            "max_steps",
        ),
        (
            json!({"at": first_reply - 1, "script": other_script, "colour": "red"}),
            "colour",
        ),
    ];
    if first_reply >= 3 {
        // Before the first point where the run waited for the model.
        bad.push((json!({"at": first_reply - 2, "script": other_script}), "at"));
    }
    for (body, field) in &bad {
        let (status, err) = h.post(&branch_path, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["field"], *field, "{body}: {err}");
    }
    let (_, list) = h.get("/v1/runs").await;
    assert_eq!(list["total"], 1, "no refused branch left a run: {list}");

    // A branch from before the first reply, with another script: a new run in the
    // caller's tenant, in its own workspace holding the origin's world at that point.
    let (status, branched) = h
        .post(
            &branch_path,
            json!({"at": first_reply - 1, "script": other_script, "approve": "auto",
                   "task": "write something else"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{branched}");
    let branch = branched["id"].as_str().unwrap().to_string();
    assert_ne!(branch, origin);
    assert_eq!(branched["branch_of"], origin);
    assert_eq!(branched["branched_at"], first_reply - 1);
    let view = h.wait_status(&branch, &["completed", "failed"]).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["final_answer"], "wrote another out.txt");
    assert_eq!(view["tenant"], "default");
    let workspace = std::path::PathBuf::from(branched["workspace"].as_str().unwrap());
    assert!(workspace.starts_with(h.home.path().join("workspaces")));
    assert_eq!(
        std::fs::read_to_string(workspace.join("out.txt")).unwrap(),
        "branched\n"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("README.md")).unwrap(),
        "# Served\n"
    );
    // Its feed and ledger work like any run's; its history starts with the branch record.
    let (feed, _) = h.feed(&branch, None, None).await;
    assert_eq!(feed[0].1, "run_started");
    let link = &feed[0].2["payload"]["branch"];
    assert_eq!(link["run_id"], origin, "{}", feed[0].2);
    assert_eq!(link["seq"], first_reply - 1);
    let r = h
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{branch}/world?path=out.txt"),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "branched\n");
    let (status, replayed) = h
        .post(&format!("/v1/runs/{branch}/replay"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["status"], "matched", "{replayed}");

    // The two runs part at their first step, and leave different out.txt behind.
    let (status, diff) = h.get(&format!("/v1/runs/{origin}/diff/{branch}")).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(diff["run_a"], origin);
    assert_eq!(diff["run_b"], branch);
    assert_eq!(diff["common_prefix"], 0, "{diff}");
    assert_eq!(diff["divergence"]["index"], 1, "{diff}");
    assert_eq!(diff["files"][0]["path"], "out.txt", "{diff}");
    assert_eq!(diff["files"][0]["change"], "differs", "{diff}");
    let (_, same) = h.get(&format!("/v1/runs/{origin}/diff/{origin}")).await;
    assert_eq!(same["divergence"], Value::Null, "{same}");

    // The OpenAPI document has the routes, and its schemas name the fields the bodies have.
    let (_, doc) = h.get("/openapi.json").await;
    for path in [
        "/v1/runs/{id}/world",
        "/v1/runs/{id}/diff/{other}",
        "/v1/runs/{id}/replay",
        "/v1/runs/{id}/branch",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    for (schema, body) in [
        ("RunDiff", &diff),
        ("Divergence", &diff["divergence"]),
        ("Step", &diff["divergence"]["a"]),
        ("StepCall", &diff["divergence"]["a"]["calls"][0]),
        ("FileDifference", &diff["files"][0]),
        ("Replayed", &replayed),
        ("WorldView", &world),
        ("Branched", &branched),
    ] {
        let documented = schema_properties(&doc, schema);
        let actual: std::collections::BTreeSet<String> =
            body.as_object().unwrap().keys().cloned().collect();
        assert!(
            actual.is_subset(&documented),
            "{schema}: body has {actual:?}, the document lists {documented:?}"
        );
    }
    assert_eq!(
        schema_properties(&doc, "RunDiff"),
        diff.as_object().unwrap().keys().cloned().collect(),
        "RunDiff documents exactly its fields"
    );
    h.stop().await;
}
