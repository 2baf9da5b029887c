//! Keys generated on first use (the writ issuer key, the runtime checkpoint key) under
//! concurrent first uses: a server's first burst of runs, or several `praxis` processes on
//! a fresh data dir. Every caller gets a complete key, and all get the same one. Without
//! the keys directory's lock a caller read a key file another was still writing and the
//! run was refused (`writ`: 422 in the load test).

use praxis_runtime::DataHome;
use std::sync::{Arc, Barrier};

const CALLERS: usize = 24;
const ROUNDS: usize = 20;

/// Runs `f` from `CALLERS` threads released at once on a fresh data dir, `ROUNDS` times;
/// every result of a round must be `Ok` and equal.
fn race<T: PartialEq + std::fmt::Debug + Send + 'static>(
    f: impl Fn(&DataHome) -> Result<T, praxis_runtime::home::HomeError> + Send + Sync + 'static,
) {
    let f = Arc::new(f);
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let home = DataHome::at(dir.path().join("home"));
        let barrier = Arc::new(Barrier::new(CALLERS));
        let threads: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (home, barrier, f) = (home.clone(), barrier.clone(), f.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    f(&home).map_err(|e| e.to_string())
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for result in &results {
            assert!(result.is_ok(), "round {round}: {result:?}");
        }
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "round {round}: callers got different keys: {results:?}"
        );
    }
}

#[test]
fn concurrent_first_uses_agree_on_one_complete_issuer_key() {
    race(|home| {
        let (token, _) = home.development_writ()?;
        // The writ chains to the key on disk, as the server checks before a 201.
        let anchor = home.local_anchor()?;
        praxis_writ::verify(&token, &anchor, std::time::SystemTime::now()).map_err(|source| {
            praxis_runtime::home::HomeError::Writ {
                context: "verifying the development writ".into(),
                source,
            }
        })?;
        Ok(anchor.public_hex())
    });
}

#[test]
fn concurrent_first_uses_agree_on_one_complete_checkpoint_key() {
    race(|home| Ok(home.checkpoint_key()?.0.public_hex()));
}

/// A run without a writ of its own takes the development writ: issued once, handed out
/// again while its key is the one on disk, issued anew from a key that replaced it.
#[test]
fn the_development_writ_is_issued_once_and_never_outlives_its_key() {
    let now = std::time::SystemTime::now;
    let no_env = |_: &str| None;
    let dir = tempfile::tempdir().unwrap();
    let home = DataHome::at(dir.path().join("home"));
    let first = home.writ_grant(None, &no_env).unwrap();
    let again = home.writ_grant(None, &no_env).unwrap();
    assert_eq!(again.token, first.token);
    praxis_writ::verify(&again.token, &again.anchor, now()).unwrap();

    // Another data dir has a key and a writ of its own.
    let other_dir = tempfile::tempdir().unwrap();
    let other = DataHome::at(other_dir.path().join("home"))
        .writ_grant(None, &no_env)
        .unwrap();
    assert_ne!(other.anchor.public_hex(), first.anchor.public_hex());
    assert_ne!(other.token, first.token);

    // The key replaced on disk: the kept writ is not handed out with the new anchor.
    praxis_writ::IssuerKey::generate()
        .save(&home.keys_dir(), true)
        .unwrap();
    let after = home.writ_grant(None, &no_env).unwrap();
    assert_ne!(after.anchor.public_hex(), first.anchor.public_hex());
    assert_ne!(after.token, first.token);
    praxis_writ::verify(&after.token, &after.anchor, now()).unwrap();
    assert_eq!(home.writ_grant(None, &no_env).unwrap().token, after.token);
}
