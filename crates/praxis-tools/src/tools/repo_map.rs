//! `repo_map`: the files of the workspace with their top-level symbols.
//!
//! Symbol extraction is heuristic: line regexes anchored at column 0, so only unindented
//! (top-level) declarations are found, nothing inside `impl` blocks, classes or string
//! literals is parsed, and unusual formatting can be missed. It is a map for orientation,
//! not a parser.

use crate::registry::{capped_ok, path_resource, run_blocking};
use crate::{BoxFuture, ExecContext, Tool, WalkEntry, Workspace};
use praxis_core::{AccessMode, Effect, Observation, Resource};
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::LazyLock;

pub const NAME: &str = "repo_map";

const MAX_SYMBOLS_PER_FILE: usize = 50;
const MAX_SOURCE_BYTES: u64 = 1024 * 1024;

/// Arguments of `repo_map`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoMapArgs {
    /// Directory to map, relative to the workspace root (default: the root).
    #[serde(default = "dot")]
    pub path: String,
    /// Map at most this many files (default 400).
    #[serde(default = "default_max_files")]
    pub max_files: usize,
}

fn dot() -> String {
    ".".to_string()
}

fn default_max_files() -> usize {
    400
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RepoMapTool;

impl Tool for RepoMapTool {
    type Args = RepoMapArgs;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str = "Map the workspace: every file (sorted, relative to the \
         workspace root) and, for Rust, Python, JavaScript/TypeScript and Go sources, their \
         top-level symbols, each on its own line as `  KIND NAME`. First line: `# N files \
         under PATH`.";
    const EFFECT: Effect = Effect::Read;

    fn touches(&self, args: &RepoMapArgs) -> Vec<Resource> {
        path_resource(&args.path, AccessMode::Read)
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: RepoMapArgs) -> BoxFuture<'a, Observation> {
        let (ws, limit) = (ctx.workspace.clone(), ctx.limits.output_bytes);
        run_blocking(NAME, args, move |args: RepoMapArgs| map(&ws, &args, limit))
    }
}

fn map(ws: &Workspace, args: &RepoMapArgs, limit: usize) -> Observation {
    let start = match ws.normalize(&args.path) {
        Ok(p) => p,
        Err(e) => return Observation::error(e.to_string()),
    };
    // The walk visits every file (to count them); the first `max_files` are read through
    // the descriptor the walk opens.
    let mut count = 0usize;
    let mut body = String::new();
    let walked = ws.walk(&args.path, |entry| {
        count += 1;
        if count <= args.max_files {
            body.push_str(entry.rel);
            body.push('\n');
            for (kind, name) in file_symbols(entry) {
                body.push_str(&format!("  {kind} {name}\n"));
            }
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = walked {
        return Observation::error(e.to_string());
    }
    let shown = count.min(args.max_files);
    let mut text = format!("# {count} files under {start}");
    if shown < count {
        text.push_str(&format!(", showing first {shown}"));
    }
    text.push('\n');
    text.push_str(&body);
    capped_ok(limit, text)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    Rust,
    Python,
    Script,
    Go,
}

fn lang_of(path: &Path) -> Option<Lang> {
    match path.extension()?.to_str()? {
        "rs" => Some(Lang::Rust),
        "py" | "pyi" => Some(Lang::Python),
        "js" | "jsx" | "mjs" | "cjs" | "ts" | "tsx" | "mts" | "cts" => Some(Lang::Script),
        "go" => Some(Lang::Go),
        _ => None,
    }
}

/// The top-level symbols of a source file (empty for other files, files over 1 MiB,
/// binary or unreadable files), read through the walk's descriptors.
fn file_symbols(entry: &WalkEntry<'_>) -> Vec<(String, String)> {
    let Some(lang) = lang_of(Path::new(entry.rel)) else {
        return Vec::new();
    };
    match entry.read_capped(MAX_SOURCE_BYTES) {
        Some(bytes) if !bytes.contains(&0) => symbols(lang, &String::from_utf8_lossy(&bytes)),
        _ => Vec::new(),
    }
}

/// One extraction rule: a column-0 regex whose group 1 is the name, and the kind it yields.
struct Rule {
    kind: &'static str,
    re: Regex,
}

fn rules(table: &[(&'static str, &str)]) -> Vec<Rule> {
    table
        .iter()
        .map(|(kind, re)| Rule {
            kind,
            // The patterns are constants of this file: a bad one is a bug the tests catch.
            re: Regex::new(re).expect("valid symbol regex"),
        })
        .collect()
}

/// Rust visibility prefix: `pub`, `pub(crate)`, `pub(super)`, `pub(in path)`.
const VIS: &str = r"(?:pub(?:\([^)]*\))?\s+)?";

static RUST: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        (
            "fn",
            &format!(
                r#"^{VIS}(?:default\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+(?:"[^"]*"\s+)?)?fn\s+([A-Za-z_]\w*)"#
            ),
        ),
        ("struct", &format!(r"^{VIS}struct\s+([A-Za-z_]\w*)")),
        ("enum", &format!(r"^{VIS}enum\s+([A-Za-z_]\w*)")),
        (
            "trait",
            &format!(r"^{VIS}(?:unsafe\s+)?(?:auto\s+)?trait\s+([A-Za-z_]\w*)"),
        ),
        ("mod", &format!(r"^{VIS}mod\s+([A-Za-z_]\w*)")),
        ("type", &format!(r"^{VIS}type\s+([A-Za-z_]\w*)")),
        ("const", &format!(r"^{VIS}const\s+([A-Za-z_]\w*)\s*:")),
        (
            "static",
            &format!(r"^{VIS}static\s+(?:mut\s+)?([A-Za-z_]\w*)"),
        ),
    ])
});

static PYTHON: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        ("def", r"^(?:async\s+)?def\s+([A-Za-z_]\w*)"),
        ("class", r"^class\s+([A-Za-z_]\w*)"),
    ])
});

static SCRIPT: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        (
            "function",
            r"^(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)",
        ),
        (
            "class",
            r"^(?:export\s+)?(?:default\s+)?(?:abstract\s+)?class\s+([A-Za-z_$][\w$]*)",
        ),
        (
            "interface",
            r"^(?:export\s+)?interface\s+([A-Za-z_$][\w$]*)",
        ),
        (
            "type",
            r"^(?:export\s+)?type\s+([A-Za-z_$][\w$]*)\s*(?:<|=)",
        ),
        (
            "enum",
            r"^(?:export\s+)?(?:const\s+)?enum\s+([A-Za-z_$][\w$]*)",
        ),
        ("const", r"^export\s+const\s+([A-Za-z_$][\w$]*)"),
        // An arrow function bound at top level: `const f = (a) =>`, `const f = async x =>`.
        (
            "const",
            r"^const\s+([A-Za-z_$][\w$]*)\s*(?::[^=]+)?=\s*(?:async\s+)?(?:\([^)]*\)|[A-Za-z_$][\w$]*)\s*(?::[^=]+)?=>",
        ),
    ])
});

static GO: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        (
            "struct",
            r"^type\s+([A-Za-z_]\w*)(?:\[[^\]]*\])?\s+struct\b",
        ),
        (
            "interface",
            r"^type\s+([A-Za-z_]\w*)(?:\[[^\]]*\])?\s+interface\b",
        ),
        ("type", r"^type\s+([A-Za-z_]\w*)"),
        ("func", r"^func\s+([A-Za-z_]\w*)"),
    ])
});

/// Go method: `func (r *T) Name(` or `func (T[K]) Name(` -> `T.Name`.
static GO_METHOD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^func\s*\(\s*(?:[A-Za-z_]\w*\s+)?\*?\s*([A-Za-z_]\w*)(?:\[[^\]]*\])?\s*\)\s*([A-Za-z_]\w*)")
        .expect("valid symbol regex")
});

/// Rust `impl` line: `impl X`, `impl<T> X<T>`, `impl T for X` -> X.
static RUST_IMPL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:unsafe\s+)?impl\b").expect("valid symbol regex"));

/// The top-level symbols of `text` in language `lang`, in file order, at most 50.
fn symbols(lang: Lang, text: &str) -> Vec<(String, String)> {
    let table: &[Rule] = match lang {
        Lang::Rust => &RUST,
        Lang::Python => &PYTHON,
        Lang::Script => &SCRIPT,
        Lang::Go => &GO,
    };
    let mut out = Vec::new();
    for line in text.lines() {
        if out.len() >= MAX_SYMBOLS_PER_FILE {
            break;
        }
        // Top level only: declarations start at column 0.
        if line.starts_with(char::is_whitespace) || line.is_empty() {
            continue;
        }
        if lang == Lang::Rust && RUST_IMPL.is_match(line) {
            if let Some(name) = rust_impl_target(line) {
                out.push(("impl".to_string(), name));
            }
            continue;
        }
        if lang == Lang::Go
            && let Some(c) = GO_METHOD.captures(line)
        {
            out.push(("func".to_string(), format!("{}.{}", &c[1], &c[2])));
            continue;
        }
        if let Some((kind, name)) = table.iter().find_map(|rule| {
            rule.re
                .captures(line)
                .map(|c| (rule.kind, c[1].to_string()))
        }) {
            out.push((kind.to_string(), name));
        }
    }
    out
}

/// The type an `impl` line is for, without generics or path: `impl<T> fmt::Display for
/// Foo<T> where` -> `Foo`.
fn rust_impl_target(line: &str) -> Option<String> {
    let rest = line.trim_start_matches("unsafe").trim_start();
    let mut rest = rest.strip_prefix("impl")?;
    if let Some(generics) = rest.strip_prefix('<') {
        // Skip the impl's own generic parameters, which may nest (`impl<T: Into<U>>`).
        let mut depth = 1usize;
        let mut end = None;
        for (i, ch) in generics.char_indices() {
            match ch {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &generics[end?..];
    }
    let head = rest.split(['{', ';']).next().unwrap_or("");
    let head = head.split(" where").next().unwrap_or(head).trim();
    let target = match head.rfind(" for ") {
        Some(i) => &head[i + 5..],
        None => head,
    };
    let target = target
        .trim()
        .trim_start_matches(['&', '!'])
        .trim_start_matches("dyn ");
    let base = target.split('<').next().unwrap_or(target).trim();
    let name = base.rsplit("::").next().unwrap_or(base).trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Registry, ToolContract};
    use praxis_core::{Contracts, ExecStatus};
    use serde_json::json;
    use std::fs;

    fn syms(lang: Lang, text: &str) -> Vec<String> {
        symbols(lang, text)
            .into_iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect()
    }

    #[test]
    fn rust_symbols() {
        let src = r#"
use std::fmt;
pub fn public() {}
fn private() {}
pub(crate) async fn fetch() {}
pub const unsafe fn raw() {}
const fn konst() {}
pub struct Point { x: i32 }
enum Color { Red }
pub trait Shape {}
mod inner {
    fn nested() {}
}
pub type Alias = u32;
const LIMIT: usize = 3;
static mut COUNTER: u32 = 0;
impl Point {
    pub fn method(&self) {}
}
impl fmt::Display for Point {}
impl<T: Into<Vec<u8>>> From<T> for Wrapper<T> {}
// fn commented() {}
"#;
        assert_eq!(
            syms(Lang::Rust, src),
            [
                "fn public",
                "fn private",
                "fn fetch",
                "fn raw",
                "fn konst",
                "struct Point",
                "enum Color",
                "trait Shape",
                "mod inner",
                "type Alias",
                "const LIMIT",
                "static COUNTER",
                "impl Point",
                "impl Point",
                "impl Wrapper"
            ]
        );
    }

    #[test]
    fn python_symbols() {
        let src = "import os\n\ndef top():\n    def inner():\n        pass\n\nasync def fetch():\n    pass\n\nclass Model(Base):\n    def method(self):\n        pass\n";
        assert_eq!(
            syms(Lang::Python, src),
            ["def top", "def fetch", "class Model"]
        );
    }

    #[test]
    fn script_symbols() {
        let src = "import x from 'y';\nfunction plain() {}\nasync function load() {}\nexport function api() {}\nexport default function main() {}\nexport class Store {}\nclass Local {}\nexport const VERSION = '1';\nconst handler = (req, res) => {};\nconst add = async x => x;\nconst notAFunction = 3;\ninterface Props { a: string }\nexport type Id = string;\nexport enum Mode { A }\n  function indented() {}\n";
        assert_eq!(
            syms(Lang::Script, src),
            [
                "function plain",
                "function load",
                "function api",
                "function main",
                "class Store",
                "class Local",
                "const VERSION",
                "const handler",
                "const add",
                "interface Props",
                "type Id",
                "enum Mode"
            ]
        );
    }

    #[test]
    fn go_symbols() {
        let src = "package main\n\nfunc main() {}\nfunc (s *Server) Start() error { return nil }\nfunc (Server) Stop() {}\ntype Server struct {\n\taddr string\n}\ntype Handler interface {\n\tServe()\n}\ntype ID string\nfunc Map[T any](x T) T { return x }\n";
        assert_eq!(
            syms(Lang::Go, src),
            [
                "func main",
                "func Server.Start",
                "func Server.Stop",
                "struct Server",
                "interface Handler",
                "type ID",
                "func Map"
            ]
        );
    }

    #[test]
    fn at_most_fifty_symbols_per_file() {
        let src: String = (0..80).map(|i| format!("fn f{i}() {{}}\n")).collect();
        assert_eq!(symbols(Lang::Rust, &src).len(), 50);
    }

    fn fixture() -> (tempfile::TempDir, ExecContext) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("src")).unwrap();
        fs::write(
            root.join("src/lib.rs"),
            "pub struct A;\nimpl A {}\npub fn b() {}\n",
        )
        .unwrap();
        fs::write(root.join("app.py"), "class App:\n    pass\n").unwrap();
        fs::write(root.join("README.md"), "# fn not_code\n").unwrap();
        fs::write(root.join("web.ts"), "export function render() {}\n").unwrap();
        let ctx = ExecContext::new(Workspace::new(root).unwrap());
        (dir, ctx)
    }

    #[tokio::test]
    async fn map_output_format() {
        let (dir, ctx) = fixture();
        let o = RepoMapTool.execute(&ctx, json!({})).await;
        assert_eq!(o.status, ExecStatus::Ok);
        assert_eq!(
            o.output,
            "# 4 files under .\nREADME.md\napp.py\n  class App\nsrc/lib.rs\n  struct A\n  impl A\n  fn b\nweb.ts\n  function render\n"
        );
        let o = RepoMapTool.execute(&ctx, json!({"path": "src"})).await;
        assert_eq!(
            o.output,
            "# 1 files under src\nsrc/lib.rs\n  struct A\n  impl A\n  fn b\n"
        );
        let o = RepoMapTool.execute(&ctx, json!({"max_files": 2})).await;
        assert_eq!(
            o.output,
            "# 4 files under ., showing first 2\nREADME.md\napp.py\n  class App\n"
        );
        // Files over 1 MiB are listed without symbols.
        let big = format!("fn big() {{}}\n{}", "// pad\n".repeat(200_000));
        fs::write(dir.path().join("big.rs"), big).unwrap();
        let o = RepoMapTool.execute(&ctx, json!({"max_files": 2})).await;
        assert_eq!(
            o.output,
            "# 5 files under ., showing first 2\nREADME.md\napp.py\n  class App\n"
        );
        let o = RepoMapTool.execute(&ctx, json!({})).await;
        assert!(o.output.contains("big.rs\nsrc/lib.rs\n"), "{}", o.output);
    }

    #[tokio::test]
    async fn map_caps_output_and_refuses_escapes() {
        let (dir, mut ctx) = fixture();
        ctx.limits.output_bytes = 20;
        let o = RepoMapTool.execute(&ctx, json!({})).await;
        assert!(
            o.output
                .starts_with("# 4 files under .\nRE\n[... truncated: "),
            "{}",
            o.output
        );
        assert!(o.truncated_bytes > 0);
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        for path in ["..", "/", "out"] {
            let o = RepoMapTool.execute(&ctx, json!({ "path": path })).await;
            assert_eq!(o.status, ExecStatus::Error, "{path}");
        }
    }

    #[test]
    fn schema_rejects_bad_arguments() {
        let r = Registry::builtin();
        let err = r
            .compile(NAME, &json!({"max_files": "all", "depth": 2}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`max_files`"), "{err}");
        assert!(err.contains("unknown field `depth`"), "{err}");
    }
}
