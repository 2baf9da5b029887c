//! Praxis on Kubernetes (cargo feature `kubernetes`; without it this crate is empty).
//!
//! The executor's object builder: a run becomes a `batch/v1` Job whose one container runs
//! `praxis job` against the shared ledger (`PRAXIS_LEDGER_URL` from a Secret), configured
//! by the thoughtmesh variables, with the run's deadline as `activeDeadlineSeconds`,
//! resource limits, and the writ mounted from its own Secret ([`job::writ_secret`]). How a
//! Job's status maps back to the run's is [`status`]. The objects are k8s-openapi types,
//! so what is sent is what the API schema describes. With feature `client`, [`client`]
//! talks to the API server (kube, on the tree's rustls) for the server's executor; its tests
//! run against a fake API server (see the README: no live cluster ran here).

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "fake-api")]
pub mod fake;
#[cfg(feature = "kubernetes")]
pub mod job;
#[cfg(feature = "kubernetes")]
pub mod status;
