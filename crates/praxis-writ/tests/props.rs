//! Property tests: attenuation never widens, and neither does a block appended by other
//! means, for random parents, children and requests drawn from small pools.

mod common;

use biscuit_auth::builder::{fact, string};
use biscuit_auth::{Biscuit, BlockBuilder};
use common::*;
use praxis_core::{AccessMode, Authorization, Effect, Resource, Spent, Verdict};
use praxis_writ::{
    Approvals, Budget, IssuerKey, Rules, ToolGrant, ToolMode, WritSpec, attenuate, issue, verify,
};
use proptest::prelude::*;
use proptest::sample::subsequence;

const TOOLS: [&str; 4] = ["fs_read", "fs_write", "shell", "http"];
const GLOBS: [&str; 6] = [
    "**",
    "src/**",
    "src/*.rs",
    "docs/**",
    "README.md",
    "src/a/**",
];
const ALLOW: [&str; 3] = ["ls *", "cat *", "cargo *"];
const DENY: [&str; 2] = ["rm *", "cargo publish *"];
const HOSTS: [&str; 3] = ["api.example.com", "*.example.com", "a.example.com"];
const ENV: [&str; 3] = ["PATH", "LD_*", "*"];
const PATHS: [&str; 7] = [
    "src/a.rs",
    "src/a/b.rs",
    "docs/x.md",
    "README.md",
    ".",
    "Cargo.toml",
    "src/x/y.txt",
];
const COMMANDS: [&str; 10] = [
    "ls -la",
    "cargo test",
    "rm -rf x",
    "cat a | rm b",
    "echo hi",
    "cargo publish --dry",
    "PATH=. ls",
    "LD_PRELOAD=./x.so cat a",
    "ls > README.md",
    "cat < src/a.rs",
];
const REQ_HOSTS: [&str; 3] = ["api.example.com", "b.example.com", "evil.com"];

fn effect() -> impl Strategy<Value = Effect> {
    prop_oneof![
        Just(Effect::Read),
        Just(Effect::Write),
        Just(Effect::Exec),
        Just(Effect::Network)
    ]
}

fn strings(pool: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(
        subsequence(pool, 0..=pool.len()).prop_map(|v| v.into_iter().map(String::from).collect()),
    )
}

fn grant(name: String) -> impl Strategy<Value = ToolGrant> {
    (
        proptest::option::of(subsequence(&GLOBS[..], 1..=3)),
        proptest::option::of(prop_oneof![Just(ToolMode::Read), Just(ToolMode::ReadWrite)]),
        strings(&ALLOW),
        strings(&DENY),
        strings(&HOSTS),
        strings(&ENV),
    )
        .prop_map(
            move |(paths, mode, allow_commands, deny_commands, hosts, allow_env)| ToolGrant {
                name: name.clone(),
                paths: paths.map(|v| v.into_iter().map(String::from).collect()),
                mode,
                allow_commands,
                deny_commands,
                allow_env,
                hosts,
            },
        )
}

fn budget() -> impl Strategy<Value = Budget> {
    (
        proptest::option::of(0u64..6),
        proptest::option::of(prop_oneof![Just(0.5f64), Just(1.0), Just(2.0)]),
        proptest::option::of(0u64..3000),
    )
        .prop_map(|(tool_calls, usd, bytes_written)| Budget {
            tool_calls,
            usd,
            bytes_written,
            ..Budget::default()
        })
}

fn approvals() -> impl Strategy<Value = Approvals> {
    (
        subsequence(&TOOLS[..], 0..=2),
        subsequence(vec![Effect::Write, Effect::Exec], 0..=2),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(tools, effects, budgets)| Approvals {
            tools: tools.into_iter().map(String::from).collect(),
            effects,
            timeout_seconds: None,
            budgets,
        })
}

fn spec_with(
    tools: Vec<ToolGrant>,
    ceiling: Effect,
    budget: Budget,
    approvals: Approvals,
    minutes: u64,
) -> WritSpec {
    WritSpec {
        subject: "s".into(),
        tenant: "t".into(),
        not_before: None,
        expires_in: Some(format!("{minutes}m")),
        expires_at: None,
        effect_ceiling: ceiling,
        budget,
        tools,
        approvals,
    }
}

fn any_spec() -> impl Strategy<Value = WritSpec> {
    (
        subsequence(&TOOLS[..], 1..=4),
        effect(),
        budget(),
        approvals(),
        1u64..120,
    )
        .prop_flat_map(|(names, ceiling, budget, approvals, minutes)| {
            let grants: Vec<_> = names.into_iter().map(|n| grant(n.to_string())).collect();
            grants.prop_map(move |tools| {
                spec_with(tools, ceiling, budget.clone(), approvals.clone(), minutes)
            })
        })
}

/// A child made from its parent: each part either copied (often narrower) or random.
fn child_of(parent: WritSpec) -> impl Strategy<Value = WritSpec> {
    let n = parent.tools.len();
    let grants: Vec<_> = parent.tools.iter().map(|t| grant(t.name.clone())).collect();
    (
        proptest::collection::vec(prop::bool::weighted(0.8), n),
        proptest::collection::vec(any::<bool>(), n),
        grants,
        (prop::bool::weighted(0.8), effect()),
        (prop::bool::weighted(0.8), budget()),
        (prop::bool::weighted(0.8), approvals()),
        // Mostly none: the child then inherits the parent's expiry.
        proptest::option::weighted(0.2, 1u64..120),
    )
        .prop_map(
            move |(keep, copy, random, ceiling, budget, approvals, minutes)| {
                let tools = parent
                    .tools
                    .iter()
                    .zip(random)
                    .enumerate()
                    .filter(|(i, _)| keep[*i])
                    .map(|(i, (p, r))| if copy[i] { p.clone() } else { r })
                    .collect();
                let mut child = spec_with(
                    tools,
                    if ceiling.0 {
                        parent.effect_ceiling
                    } else {
                        ceiling.1
                    },
                    if budget.0 {
                        parent.budget.clone()
                    } else {
                        budget.1
                    },
                    if approvals.0 {
                        parent.approvals.clone()
                    } else {
                        approvals.1
                    },
                    minutes.unwrap_or(1),
                );
                if minutes.is_none() {
                    child.expires_in = None;
                }
                child
            },
        )
}

#[derive(Clone, Debug)]
struct Req {
    tool: &'static str,
    effect: Effect,
    resources: Vec<Resource>,
    spent: Spent,
    offset_ms: u64,
}

fn request() -> impl Strategy<Value = Req> {
    // Resources fit the tool (paths for file tools, commands for shell, hosts for http)
    // most of the time, so that many requests get past the first checks.
    let path =
        (prop::sample::select(&PATHS[..]), any::<bool>()).prop_map(|(p, w)| Resource::Path {
            path: p.into(),
            mode: if w {
                AccessMode::Write
            } else {
                AccessMode::Read
            },
        });
    let command =
        prop::sample::select(&COMMANDS[..]).prop_map(|c| Resource::Command { command: c.into() });
    let host = prop::sample::select(&REQ_HOSTS[..]).prop_map(|h| Resource::Host { host: h.into() });
    let any_resource = prop_oneof![path.clone(), command.clone(), host.clone()].boxed();
    let by_tool = prop_oneof![
        4 => (prop::sample::select(vec!["fs_read", "fs_write", "grep"]), proptest::collection::vec(path, 1..3)).boxed(),
        2 => (Just("shell"), proptest::collection::vec(command, 1..2)).boxed(),
        2 => (Just("http"), proptest::collection::vec(host, 1..2)).boxed(),
        1 => (prop::sample::select(TOOLS.to_vec()), proptest::collection::vec(any_resource, 0..3)).boxed(),
    ];
    (
        by_tool,
        effect(),
        // Mostly nothing spent and early in the window, so that requests reach the checks
        // that differ between writs.
        proptest::option::weighted(0.3, (0u64..6, 0u64..2_000_000, 0u64..4000)),
        prop_oneof![3 => 0u64..60_000, 1 => 0u64..(130 * 60 * 1000)],
    )
        .prop_map(|((tool, resources), effect, spent, offset_ms)| Req {
            tool,
            effect,
            resources,
            spent: spent
                .map(|(calls, usd, bytes)| Spent {
                    tool_calls: calls,
                    usd_micros: usd,
                    bytes_written: bytes,
                    ..Spent::default()
                })
                .unwrap_or_default(),
            offset_ms,
        })
}

fn answer(rules: &Rules, r: &Req) -> Authorization {
    ask_at(
        rules,
        r.tool,
        r.effect,
        &r.resources,
        &r.spent,
        now_ms() + r.offset_ms,
    )
}

fn allows(rules: &Rules, r: &Req) -> bool {
    is_allow(&answer(rules, r))
}

/// A budget the parent enforces hard stays hard: the child stops (or denies) too, it never
/// turns the overrun into a question for a person.
fn keeps_hard_stop(parent: &Rules, child: &Rules, r: &Req) -> bool {
    !matches!(answer(parent, r), Authorization::Exhausted { .. })
        || matches!(
            answer(child, r),
            Authorization::Exhausted { .. } | Authorization::Verdict(Verdict::Deny { .. })
        )
}

/// Every request the pools can form with nothing spent, at the start of the window: random
/// requests rarely land inside a child's grant, these cover each grant exhaustively.
fn every_request() -> Vec<Req> {
    let effects = [Effect::Read, Effect::Write, Effect::Exec, Effect::Network];
    let mut all = Vec::new();
    for tool in TOOLS.iter().chain(["grep"].iter()) {
        for effect in effects {
            let mut resources: Vec<Vec<Resource>> = Vec::new();
            for path in PATHS {
                for mode in [AccessMode::Read, AccessMode::Write] {
                    resources.push(vec![Resource::Path {
                        path: path.into(),
                        mode,
                    }]);
                }
            }
            resources.extend(COMMANDS.iter().map(|c| {
                vec![Resource::Command {
                    command: (*c).into(),
                }]
            }));
            resources.extend(
                REQ_HOSTS
                    .iter()
                    .map(|h| vec![Resource::Host { host: (*h).into() }]),
            );
            resources.push(Vec::new());
            for resources in resources {
                all.push(Req {
                    tool,
                    effect,
                    resources,
                    spent: Spent::default(),
                    offset_ms: 0,
                });
            }
        }
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn attenuation_never_widens(
        (parent, child) in any_spec().prop_flat_map(|p| (Just(p.clone()), child_of(p))),
        requests in proptest::collection::vec(request(), 32),
    ) {
        let key = IssuerKey::generate();
        let anchor = key.anchor();
        let token = issue(&parent, &key, now()).unwrap();
        let parent_writ = verify(&token, &anchor, now()).unwrap();
        if let Ok(child_token) = attenuate(&token, &anchor, &child, now()) {
            let child_writ = verify(&child_token, &anchor, now()).unwrap();
            // The child block alone must be no wider than the parent: this is what the
            // widening checks promise, independent of the intersection.
            let alone = Rules::new(vec![child_writ.blocks()[1].clone()]).unwrap();
            for r in requests.iter().chain(every_request().iter()) {
                let p = allows(parent_writ.rules(), r);
                prop_assert!(!allows(child_writ.rules(), r) || p, "child token allows {r:?}");
                prop_assert!(!allows(&alone, r) || p, "child block allows {r:?}\nchild {:?}", child_writ.blocks()[1]);
                prop_assert!(keeps_hard_stop(parent_writ.rules(), child_writ.rules(), r), "child softens a hard budget for {r:?}");
                prop_assert!(keeps_hard_stop(parent_writ.rules(), &alone, r), "child block softens a hard budget for {r:?}");
            }
        }
    }

    /// A child that differs from its parent only in one tool's path globs: the glob-coverage
    /// rule alone decides, and must never let a wider set through.
    #[test]
    fn attenuating_paths_never_widens(
        parent in any_spec(),
        which in any::<prop::sample::Index>(),
        globs in proptest::option::of(subsequence(&GLOBS[..], 1..=3)),
    ) {
        let key = IssuerKey::generate();
        let anchor = key.anchor();
        let token = issue(&parent, &key, now()).unwrap();
        let parent_writ = verify(&token, &anchor, now()).unwrap();
        let mut child = parent.clone();
        let i = which.index(child.tools.len());
        child.tools[i].paths = globs.map(|v| v.into_iter().map(String::from).collect());
        if let Ok(child_token) = attenuate(&token, &anchor, &child, now()) {
            let child_writ = verify(&child_token, &anchor, now()).unwrap();
            let alone = Rules::new(vec![child_writ.blocks()[1].clone()]).unwrap();
            for r in &every_request() {
                prop_assert!(!allows(&alone, r) || allows(parent_writ.rules(), r), "child block allows {r:?}");
            }
        }
    }

    #[test]
    fn an_appended_block_never_widens(
        parent in any_spec(),
        extra in any_spec(),
        requests in proptest::collection::vec(request(), 32),
    ) {
        let key = IssuerKey::generate();
        let anchor = key.anchor();
        let token = issue(&parent, &key, now()).unwrap();
        let parent_writ = verify(&token, &anchor, now()).unwrap();
        let json = serde_json::to_string(&extra.resolved(now()).unwrap()).unwrap();
        let block = BlockBuilder::new().fact(fact("writ_spec", &[string(&json)])).unwrap();
        let bypass = Biscuit::from_base64(&token, anchor.public_key())
            .unwrap()
            .append(block)
            .unwrap()
            .to_base64()
            .unwrap();
        let writ = verify(&bypass, &anchor, now()).unwrap();
        for r in &requests {
            prop_assert!(!allows(writ.rules(), r) || allows(parent_writ.rules(), r), "{r:?}");
            prop_assert!(keeps_hard_stop(parent_writ.rules(), writ.rules(), r), "softened: {r:?}");
        }
    }
}
