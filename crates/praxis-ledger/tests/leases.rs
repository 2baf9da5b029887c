//! Run leases, fencing, the side tables and LISTEN/NOTIFY on PostgreSQL. These need a
//! server: `.ci/postgres` runs them (`--include-ignored`) with `PRAXIS_TEST_POSTGRES_URL`
//! set; run without it they fail under `CI=true` and are skipped (saying so) otherwise.

mod common;

use common::{Backend, assert_chained, notes};
use praxis_ledger::approvals::{ApprovalError, ApprovalRequest};
use praxis_ledger::cancels::CancelRequest;
use praxis_ledger::{ENTRIES_CHANNEL, Ledger, LedgerError, PostgresLedger, RUN_FINISHED_KIND};
use std::sync::Arc;
use std::time::Duration;

/// Long enough that it cannot expire during a test.
const LONG: Duration = Duration::from_secs(3600);

fn server(backend: &Backend, name: &str) -> Arc<PostgresLedger> {
    Arc::new(PostgresLedger::connect_as(&backend.url(), Some(name.into())).unwrap())
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn one_lease_holder_at_a_time_and_takeover_only_after_expiry() {
    let Some(db) = Backend::postgres_only() else {
        return;
    };
    let (a, b) = (server(&db, "server-a"), server(&db, "server-b"));
    assert!(a.acquire_lease("run-1", LONG).unwrap());
    // Held and live: B cannot take it, A can take it again (renewal).
    assert!(!b.acquire_lease("run-1", LONG).unwrap());
    assert!(a.acquire_lease("run-1", LONG).unwrap());
    assert!(a.renew_lease("run-1", LONG).unwrap());
    assert!(!b.renew_lease("run-1", LONG).unwrap());
    let lease = a.lease("run-1").unwrap().unwrap();
    assert_eq!((lease.owner.as_str(), lease.expired), ("server-a", false));
    // A run with entries but a live lease is not an orphan.
    a.append_blocking("run-1", notes(1, 1), vec![]).unwrap();
    assert!(b.orphaned_runs().unwrap().is_empty());

    // The driver stops renewing (it died): the lease expires, B takes the run over.
    assert!(a.acquire_lease("run-1", Duration::ZERO).unwrap());
    assert_eq!(b.orphaned_runs().unwrap(), ["run-1"]);
    assert!(b.acquire_lease("run-1", LONG).unwrap());
    assert!(!a.acquire_lease("run-1", LONG).unwrap(), "A lost it");
    assert!(!a.renew_lease("run-1", LONG).unwrap());
    let lease = b.lease("run-1").unwrap().unwrap();
    assert_eq!((lease.owner.as_str(), lease.takeovers), ("server-b", 1));
    assert!(b.orphaned_runs().unwrap().is_empty());

    // A released lease expires at once but keeps naming its owner.
    b.release_lease("run-1").unwrap();
    let lease = b.lease("run-1").unwrap().unwrap();
    assert_eq!((lease.owner.as_str(), lease.expired), ("server-b", true));
    // A finished run is nobody's orphan, however expired its lease.
    b.append_blocking(
        "run-1",
        vec![common::entry(RUN_FINISHED_KIND, serde_json::json!({}))],
        vec![],
    )
    .unwrap();
    assert!(a.orphaned_runs().unwrap().is_empty());
    // A handle without an owner id cannot hold leases.
    let plain = PostgresLedger::connect(&db.url()).unwrap();
    assert!(plain.acquire_lease("run-2", LONG).is_err());
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn a_stale_owner_cannot_append_after_a_takeover() {
    let Some(db) = Backend::postgres_only() else {
        return;
    };
    let (a, b) = (server(&db, "server-a"), server(&db, "server-b"));
    assert!(a.acquire_lease("run-s", Duration::ZERO).unwrap());
    a.append_blocking("run-s", notes(1, 2), vec![]).unwrap();
    assert!(b.acquire_lease("run-s", LONG).unwrap());
    // A wakes up and tries to go on: refused, nothing written.
    let err = a.append_blocking("run-s", notes(3, 1), vec![]).unwrap_err();
    assert!(
        matches!(&err, LedgerError::LeaseHeld { owner, .. } if owner == "server-b"),
        "{err}"
    );
    // B goes on from where the chain is.
    b.append_blocking("run-s", notes(3, 2), vec![]).unwrap();
    let entries = b.entries("run-s", 0).unwrap();
    assert_chained(&entries, "run-s", 4);
    // A process without a lease (the CLI) cannot append to a leased run either, but can to
    // a run nobody leased.
    let plain = PostgresLedger::connect(&db.url()).unwrap();
    assert!(matches!(
        plain.append_blocking("run-s", notes(5, 1), vec![]),
        Err(LedgerError::LeaseHeld { .. })
    ));
    plain.append_blocking("free", notes(1, 1), vec![]).unwrap();
    // In one group commit a fenced request fails alone.
    let _pause = a.pause_writer();
    let refused = a.append("run-s", notes(5, 1), vec![]);
    let fine = a.append("other", notes(1, 1), vec![]);
    drop(_pause);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(matches!(
        rt.block_on(refused),
        Err(LedgerError::LeaseHeld { .. })
    ));
    rt.block_on(fine).unwrap();
    assert_eq!(b.entries("run-s", 0).unwrap().len(), 4);
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn side_tables_are_shared_by_every_server() {
    let Some(db) = Backend::postgres_only() else {
        return;
    };
    let (a, b) = (server(&db, "server-a"), server(&db, "server-b"));
    // Tokens made through one are known to the other; only hashes are stored.
    let token = a.tokens().create("acme").unwrap();
    let (ta, tb) = (a.tokens(), b.tokens());
    assert!(tb.any().unwrap());
    assert_eq!(tb.tenant_for(&token).unwrap().as_deref(), Some("acme"));
    assert_eq!(tb.tenant_for("prx_forged").unwrap(), None);
    assert_eq!(tb.list().unwrap().len(), 1);
    ta.set_run_tenant("r1", "acme").unwrap();
    assert_eq!(tb.run_tenant("r1").unwrap().as_deref(), Some("acme"));
    assert_eq!(tb.run_tenants().unwrap()["r1"], "acme");
    assert_eq!(tb.revoke(&tb.list().unwrap()[0].id).unwrap(), 1);
    assert_eq!(ta.tenant_for(&token).unwrap(), None);

    // An approval filed by A's driver is decided on B, once.
    let request = ApprovalRequest {
        run_id: "r1".into(),
        call_id: "c1".into(),
        tool: "shell".into(),
        arguments: "{}".into(),
        reason: "exec needs approval".into(),
        requested_at: praxis_ledger::now_rfc3339(),
        expires_at_ms: Some(1_900_000_000_000),
    };
    a.approvals().request(&request).unwrap();
    a.approvals().request(&request).unwrap();
    assert_eq!(b.approvals().pending().unwrap(), [request]);
    assert_eq!(
        b.approvals()
            .decide("r1", None, true, "ops", "fine")
            .unwrap(),
        "c1"
    );
    assert!(matches!(
        a.approvals().decide("r1", Some("c1"), false, "x", ""),
        Err(ApprovalError::NotPending { .. })
    ));
    let decision = a.approvals().decision("r1", "c1").unwrap().unwrap();
    assert!(decision.approved && decision.by == "ops");

    // A cancel filed on B is taken once by A, and B's filing notifies A.
    let mut notices = a.subscribe().unwrap();
    let cancel = CancelRequest {
        run_id: "r1".into(),
        reason: "stop".into(),
        by: "ops".into(),
        requested_at: praxis_ledger::now_rfc3339(),
    };
    assert!(b.cancels().request(&cancel).unwrap());
    assert!(!b.cancels().request(&cancel).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let notice = rt.block_on(notices.recv()).unwrap();
    assert_eq!(
        (notice.channel.as_str(), notice.run_id()),
        (praxis_ledger::CANCELS_CHANNEL, "r1")
    );
    assert_eq!(a.cancels().take("r1").unwrap(), Some(cancel));
    assert_eq!(a.cancels().take("r1").unwrap(), None);
}

#[test]
#[ignore = "needs PostgreSQL: run by .ci/postgres"]
fn every_commit_notifies_the_other_servers_with_run_and_seq() {
    let Some(db) = Backend::postgres_only() else {
        return;
    };
    let (a, b) = (server(&db, "server-a"), server(&db, "server-b"));
    let mut notices = b.subscribe().unwrap();
    a.append_blocking("run-n", notes(1, 3), vec![]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let notice = rt.block_on(notices.recv()).unwrap();
    assert_eq!(notice.channel, ENTRIES_CHANNEL);
    assert_eq!(notice.payload, "run-n:3");
    assert_eq!(notice.run_id(), "run-n");
    // A handle without an owner does not listen.
    assert!(
        PostgresLedger::connect(&db.url())
            .unwrap()
            .subscribe()
            .is_none()
    );
}
