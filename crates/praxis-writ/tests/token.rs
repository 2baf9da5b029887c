mod common;

use biscuit_auth::builder::{fact, string};
use biscuit_auth::{Biscuit, BlockBuilder};
use common::*;
use praxis_core::{Authority, Effect};
use praxis_writ::{IssuerKey, TrustAnchor, WritError, WritSpec, attenuate, inspect, issue, verify};

const PARENT: &str = r#"
subject = "agent-1"
tenant = "acme"
expires_in = "1h"
effect_ceiling = "exec"
[budget]
tool_calls = 20
usd = 1.0
[[tools]]
name = "fs_read"
paths = ["**"]
[[tools]]
name = "fs_write"
paths = ["src/**"]
[[tools]]
name = "shell"
allow_commands = ["ls *", "cat *", "cargo *"]
deny_commands = ["rm *"]
[[tools]]
name = "http"
hosts = ["*.example.com"]
[approvals]
tools = ["fs_write"]
timeout_seconds = 300
"#;

fn parent() -> (IssuerKey, TrustAnchor, String) {
    let key = IssuerKey::generate();
    let anchor = key.anchor();
    let token = issue(&spec(PARENT), &key, now()).expect("issue");
    (key, anchor, token)
}

#[test]
fn keys_round_trip_through_files_with_private_mode() {
    let dir = tempfile::tempdir().unwrap();
    let key = IssuerKey::generate();
    key.save(dir.path(), false).unwrap();
    let loaded = IssuerKey::load(dir.path()).unwrap();
    assert_eq!(loaded.public_hex(), key.public_hex());
    let anchor = TrustAnchor::from_file(&dir.path().join("issuer.pub")).unwrap();
    assert_eq!(anchor.public_hex(), key.public_hex());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("issuer.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A token issued by the saved key verifies with the loaded anchor.
    let token = issue(&spec(PARENT), &loaded, now()).unwrap();
    verify(&token, &anchor, now()).unwrap();

    let other = IssuerKey::generate();
    assert!(matches!(
        other.save(dir.path(), false),
        Err(WritError::KeyExists { .. })
    ));
    other.save(dir.path(), true).unwrap();
    assert_eq!(
        IssuerKey::load(dir.path()).unwrap().public_hex(),
        other.public_hex()
    );

    // A public key file that does not belong to the private key is refused.
    std::fs::write(dir.path().join("issuer.pub"), key.public_hex()).unwrap();
    let err = IssuerKey::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    assert!(TrustAnchor::from_hex("zz").is_err());
    assert!(matches!(
        IssuerKey::load(&dir.path().join("missing")),
        Err(WritError::Io { .. })
    ));
}

#[test]
fn issued_writ_verifies_and_describes_itself() {
    let (key, anchor, token) = parent();
    let writ = verify(&token, &anchor, now()).unwrap();
    assert_eq!(writ.subject(), "agent-1");
    assert_eq!(writ.tenant(), "acme");
    assert_eq!(writ.blocks().len(), 1);
    assert_eq!(writ.blocks()[0].expires_in, None);
    assert_eq!(
        writ.blocks()[0].expires_at.as_deref(),
        Some("2027-01-15T09:00:00Z")
    );
    assert_eq!(writ.expires_at(), at(3600));
    assert_eq!(writ.id().len(), 64);
    assert_eq!(writ.approval_timeout_ms(), Some(300_000));
    let d = Authority::describe(&writ);
    assert_eq!(d["subject"], "agent-1");
    assert_eq!(d["tenant"], "acme");
    assert_eq!(d["issuer"], key.public_hex());
    assert_eq!(d["expires_at"], "2027-01-15T09:00:00Z");
    assert_eq!(d["blocks"][0]["tools"][2]["name"], "shell");
    assert_eq!(d["id"], writ.id());
}

/// A writ (and its key) valid from two hours after [`now`] for one hour.
fn valid_in_two_hours() -> (IssuerKey, String) {
    let later = spec(
        r#"subject = "a"
not_before = "2027-01-15T10:00:00Z"
expires_at = 2027-01-15T11:00:00Z
"#,
    );
    let key = IssuerKey::generate();
    let early = issue(&later, &key, now()).unwrap();
    (key, early)
}

#[test]
fn each_refusal_is_distinct() {
    let (_, anchor, token) = parent();

    // Issued by another key, presented with our anchor.
    let stranger = IssuerKey::generate();
    let foreign = issue(&spec(PARENT), &stranger, now()).unwrap();
    match verify(&foreign, &anchor, now()) {
        Err(WritError::WrongAnchor {
            token_key_id,
            trusted_key_id,
        }) => {
            assert_eq!(token_key_id, praxis_writ::key_id(&stranger.public_hex()));
            assert_eq!(trusted_key_id, anchor.key_id());
        }
        other => panic!("expected WrongAnchor, got {other:?}"),
    }

    // Tampered: change the subject inside the signed spec.
    let mut bytes = b64_decode(&token);
    let pos = bytes
        .windows(7)
        .position(|w| w == b"agent-1")
        .expect("spec in token");
    bytes[pos + 6] = b'2';
    let tampered = b64_encode(&bytes);
    assert!(
        matches!(
            verify(&tampered, &anchor, now()),
            Err(WritError::Tampered(_))
        ),
        "{:?}",
        verify(&tampered, &anchor, now())
    );
    // Tampered: flip a byte in the middle of the token; whatever it hits, it is refused.
    let mut bytes = b64_decode(&token);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    assert!(verify(&b64_encode(&bytes), &anchor, now()).is_err());

    // Truncated or not base64 at all.
    let cut = &token[..token.len() / 2];
    assert!(matches!(
        verify(cut, &anchor, now()),
        Err(WritError::Malformed(_))
    ));
    assert!(matches!(
        verify("not a writ!", &anchor, now()),
        Err(WritError::Malformed(_))
    ));
    assert!(matches!(
        verify("", &anchor, now()),
        Err(WritError::Malformed(_))
    ));

    // Time window.
    assert!(matches!(
        verify(&token, &anchor, at(3600)),
        Err(WritError::Expired { block: 0, .. })
    ));
    let (key, early) = valid_in_two_hours();
    let err = verify(&early, &key.anchor(), now()).unwrap_err();
    assert!(
        matches!(err, WritError::NotYetValid { block: 0, .. }),
        "{err}"
    );
    verify(&early, &key.anchor(), at(2 * 3600 + 1)).unwrap();
}

/// What verifying found about a token's signatures and blocks is kept per process; its
/// validity window and its anchor are still judged on every verification.
#[test]
fn a_writ_verified_before_is_judged_again_at_each_time_and_anchor() {
    let (_, anchor, token) = parent();
    verify(&token, &anchor, now()).unwrap();
    verify(&token, &anchor, at(60)).unwrap();
    assert!(matches!(
        verify(&token, &anchor, at(3600)),
        Err(WritError::Expired { block: 0, .. })
    ));
    let stranger = IssuerKey::generate().anchor();
    assert!(matches!(
        verify(&token, &stranger, now()),
        Err(WritError::WrongAnchor { .. })
    ));
    let mut bytes = b64_decode(&token);
    let pos = bytes.windows(7).position(|w| w == b"agent-1").unwrap();
    bytes[pos + 6] = b'2';
    assert!(matches!(
        verify(&b64_encode(&bytes), &anchor, now()),
        Err(WritError::Tampered(_))
    ));
    // Surrounding blanks are not part of the token.
    verify(&format!(" {token}\n"), &anchor, now()).unwrap();

    // Valid later, then refused before its window opens.
    let (key, early) = valid_in_two_hours();
    verify(&early, &key.anchor(), at(2 * 3600 + 1)).unwrap();
    assert!(matches!(
        verify(&early, &key.anchor(), now()),
        Err(WritError::NotYetValid { block: 0, .. })
    ));
}

#[test]
fn a_signed_block_without_a_valid_spec_is_refused() {
    let (_, anchor, token) = parent();
    let biscuit = Biscuit::from_base64(&token, anchor.public_key()).unwrap();
    let junk = BlockBuilder::new()
        .fact(fact("writ_spec", &[string("{not json")]))
        .unwrap();
    let bad = biscuit.append(junk).unwrap().to_base64().unwrap();
    let err = verify(&bad, &anchor, now()).unwrap_err();
    assert!(matches!(err, WritError::BadBlock { block: 1, .. }), "{err}");
    let empty = biscuit
        .append(BlockBuilder::new())
        .unwrap()
        .to_base64()
        .unwrap();
    assert!(matches!(
        verify(&empty, &anchor, now()),
        Err(WritError::BadBlock { block: 1, .. })
    ));
}

const CHILD: &str = r#"
subject = "sub-agent"
tenant = "acme"
expires_in = "30m"
effect_ceiling = "write"
[budget]
tool_calls = 5
usd = 0.5
[[tools]]
name = "fs_read"
paths = ["src/**", "docs/*.md"]
[[tools]]
name = "fs_write"
paths = ["src/lib/**"]
[approvals]
tools = ["fs_write"]
"#;

#[test]
fn attenuation_narrows_and_is_printed_back() {
    let (_, anchor, token) = parent();
    let child_token = attenuate(&token, &anchor, &spec(CHILD), now()).unwrap();
    let writ = verify(&child_token, &anchor, now()).unwrap();
    assert_eq!(writ.blocks().len(), 2);
    assert_eq!(writ.subject(), "sub-agent");
    assert_eq!(writ.expires_at(), at(1800));
    assert_ne!(writ.id(), verify(&token, &anchor, now()).unwrap().id());

    assert!(is_allow(&authorize(
        &writ,
        "fs_read",
        Effect::Read,
        &[read("src/main.rs")]
    )));
    assert_eq!(
        rule_of(&authorize(
            &writ,
            "fs_read",
            Effect::Read,
            &[read("Cargo.toml")]
        )),
        "deny:writ.paths"
    );
    assert_eq!(
        rule_of(&authorize(&writ, "shell", Effect::Exec, &[cmd("ls")])),
        "deny:writ.tools"
    );
    assert_eq!(
        rule_of(&authorize(
            &writ,
            "fs_write",
            Effect::Write,
            &[write("src/lib/a.rs")]
        )),
        "needs_approval:writ.approvals"
    );
    // The child's own expiry is enforced.
    assert!(matches!(
        verify(&child_token, &anchor, at(1800)),
        Err(WritError::Expired { block: 1, .. })
    ));

    let text = inspect(&child_token).unwrap();
    assert!(text.contains("# block 0 (issued)\n"), "{text}");
    assert!(text.contains("# block 1 (attenuation)\n"), "{text}");
    assert!(text.contains("subject = \"sub-agent\""), "{text}");
    assert!(text.contains("[[tools]]"), "{text}");
    // Each printed block parses back as a spec.
    let second = text.split("# block 1 (attenuation)\n").nth(1).unwrap();
    assert_eq!(WritSpec::from_toml_str(second).unwrap(), writ.blocks()[1]);
    assert!(matches!(inspect("%%%"), Err(WritError::Malformed(_))));

    // A child without an expiry inherits the parent's.
    let mut open = spec(CHILD);
    open.expires_in = None;
    let t = attenuate(&token, &anchor, &open, now()).unwrap();
    assert_eq!(
        verify(&t, &anchor, now()).unwrap().blocks()[1]
            .expires_at
            .as_deref(),
        Some("2027-01-15T09:00:00Z")
    );
}

fn widening(child_toml: &str) -> (String, String) {
    let (_, anchor, token) = parent();
    match attenuate(&token, &anchor, &spec(child_toml), now()) {
        Err(WritError::Widening { field, detail }) => (field, detail),
        other => panic!("expected Widening for\n{child_toml}\ngot {other:?}"),
    }
}

#[test]
fn every_kind_of_widening_is_refused_naming_the_field() {
    let base = "subject = \"s\"\ntenant = \"acme\"\nexpires_in = \"10m\"\neffect_ceiling = \"read\"\n[budget]\ntool_calls = 5\nusd = 0.5\n";
    let cases: &[(&str, &str)] = &[
        ("[[tools]]\nname = \"git\"\n", "tools[0].name"),
        (
            "[[tools]]\nname = \"fs_write\"\npaths = [\"**\"]\n",
            "tools[0].paths[0]",
        ),
        (
            "[[tools]]\nname = \"fs_write\"\npaths = [\"srcx/**\"]\n",
            "tools[0].paths[0]",
        ),
        ("[[tools]]\nname = \"fs_write\"\n", "tools[0].paths"),
        (
            "[[tools]]\nname = \"shell\"\nallow_commands = [\"python *\"]\ndeny_commands = [\"rm *\"]\n",
            "tools[0].allow_commands[0]",
        ),
        (
            "[[tools]]\nname = \"shell\"\ndeny_commands = [\"rm *\"]\n",
            "tools[0].allow_commands",
        ),
        (
            "[[tools]]\nname = \"shell\"\nallow_commands = [\"ls *\"]\n",
            "tools[0].deny_commands",
        ),
        (
            "[[tools]]\nname = \"http\"\nhosts = [\"evil.com\"]\n",
            "tools[0].hosts[0]",
        ),
        (
            "[[tools]]\nname = \"shell\"\nallow_commands = [\"ls *\"]\ndeny_commands = [\"rm *\"]\nhosts = [\"a.example.com\"]\n",
            "tools[0].hosts[0]",
        ),
    ];
    for (tools, field) in cases {
        let (got, detail) = widening(&format!("{base}{tools}"));
        assert_eq!(&got, field, "{tools}: {detail}");
    }
    let whole: &[(&str, &str)] = &[
        (
            "subject = \"s\"\ntenant = \"acme\"\nexpires_in = \"10m\"\neffect_ceiling = \"network\"\n[budget]\ntool_calls = 5\nusd = 0.5\n",
            "effect_ceiling",
        ),
        (
            "subject = \"s\"\ntenant = \"acme\"\nexpires_in = \"2h\"\n[budget]\ntool_calls = 5\nusd = 0.5\n",
            "expires_at",
        ),
        (
            "subject = \"s\"\ntenant = \"acme\"\nexpires_in = \"10m\"\n[budget]\ntool_calls = 50\nusd = 0.5\n",
            "budget.tool_calls",
        ),
        (
            "subject = \"s\"\ntenant = \"acme\"\nexpires_in = \"10m\"\n[budget]\nusd = 0.5\n",
            "budget.tool_calls",
        ),
        (
            "subject = \"s\"\ntenant = \"acme\"\nexpires_in = \"10m\"\n[budget]\ntool_calls = 5\nusd = 2.0\n",
            "budget.usd",
        ),
        (
            "subject = \"s\"\ntenant = \"acme\"\nexpires_in = \"10m\"\n[budget]\ntool_calls = 5\n",
            "budget.usd",
        ),
        (
            "subject = \"s\"\ntenant = \"other\"\nexpires_in = \"10m\"\n",
            "tenant",
        ),
        (
            "subject = \"s\"\ntenant = \"acme\"\nexpires_in = \"10m\"\n[budget]\ntool_calls = 5\nusd = 0.5\n[[tools]]\nname = \"fs_write\"\npaths = [\"src/**\"]\n",
            "approvals.tools",
        ),
    ];
    for (toml, field) in whole {
        let (got, detail) = widening(toml);
        assert_eq!(&got, field, "{toml}: {detail}");
    }

    // A read-only grant cannot become read-write.
    let key = IssuerKey::generate();
    let ro = issue(
        &spec("subject = \"a\"\nexpires_in = \"1h\"\n[[tools]]\nname = \"fs_read\"\nmode = \"read\"\n[approvals]\neffects = [\"read\"]\n"),
        &key,
        now(),
    )
    .unwrap();
    let err = attenuate(
        &ro,
        &key.anchor(),
        &spec(
            "subject = \"b\"\n[[tools]]\nname = \"fs_read\"\n[approvals]\neffects = [\"read\"]\n",
        ),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, WritError::Widening { field, .. } if field == "tools[0].mode"),
        "{err}"
    );
    let err = attenuate(
        &ro,
        &key.anchor(),
        &spec("subject = \"b\"\n[[tools]]\nname = \"fs_read\"\nmode = \"read\"\n"),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, WritError::Widening { field, .. } if field == "approvals.effects"),
        "{err}"
    );
    // An earlier not_before is fine: the blocks intersect.
    attenuate(&ro, &key.anchor(), &spec("subject = \"b\"\nnot_before = \"2020-01-01T00:00:00Z\"\n[[tools]]\nname = \"fs_read\"\nmode = \"read\"\n[approvals]\neffects = [\"read\"]\n"), now()).unwrap();
    // An attenuation of an expired writ is refused as expired.
    assert!(matches!(
        attenuate(&ro, &key.anchor(), &spec("subject = \"b\"\n"), at(7200)),
        Err(WritError::Expired { .. })
    ));
}

#[test]
fn a_widening_block_appended_directly_cannot_widen() {
    let (_, anchor, token) = parent();
    // Everything, appended straight through biscuit, bypassing `attenuate`.
    let mut wide = WritSpec::development("x");
    wide.tenant = "acme".into();
    wide.effect_ceiling = Effect::Network;
    wide.budget = Default::default();
    wide.expires_in = None;
    wide.expires_at = Some("2030-01-01T00:00:00Z".into());
    wide.tools.push(praxis_writ::ToolGrant {
        hosts: Some(vec!["evil.com".into()]),
        ..praxis_writ::ToolGrant::new("http")
    });
    let json = serde_json::to_string(&wide).unwrap();
    let biscuit = Biscuit::from_base64(&token, anchor.public_key()).unwrap();
    let block = BlockBuilder::new()
        .fact(fact("writ_spec", &[string(&json)]))
        .unwrap();
    let bypass = biscuit.append(block).unwrap().to_base64().unwrap();
    let writ = verify(&bypass, &anchor, now()).unwrap();
    assert_eq!(writ.blocks().len(), 2);
    assert_eq!(writ.expires_at(), at(3600));
    for (tool, effect, res, rule) in [
        (
            "fs_write",
            Effect::Write,
            vec![write("Cargo.toml")],
            "deny:writ.paths",
        ),
        (
            "shell",
            Effect::Exec,
            vec![cmd("rm -rf /")],
            "deny:writ.commands",
        ),
        (
            "shell",
            Effect::Exec,
            vec![cmd("python x.py")],
            "deny:writ.commands",
        ),
        (
            "http",
            Effect::Network,
            vec![host("evil.com")],
            "deny:writ.effect_ceiling",
        ),
        (
            "http",
            Effect::Exec,
            vec![host("evil.com")],
            "deny:writ.hosts",
        ),
        ("grep", Effect::Read, vec![read("src")], "deny:writ.tools"),
        (
            "fs_write",
            Effect::Write,
            vec![write("src/a.rs")],
            "needs_approval:writ.approvals",
        ),
    ] {
        assert_eq!(
            rule_of(&authorize(&writ, tool, effect, &res)),
            rule,
            "{tool} {res:?}"
        );
    }
    let spent = praxis_core::Spent {
        tool_calls: 20,
        ..Default::default()
    };
    assert_eq!(
        rule_of(&ask(
            writ.rules(),
            "fs_read",
            Effect::Read,
            &[read("a")],
            &spent
        )),
        "exhausted:writ.budget.tool_calls"
    );
    assert!(matches!(
        verify(&bypass, &anchor, at(3600)),
        Err(WritError::Expired { block: 0, .. })
    ));
}
