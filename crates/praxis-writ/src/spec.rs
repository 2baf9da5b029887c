//! The writ spec: what users write (TOML or JSON) and what each token block carries.

use crate::error::WritError;
use crate::kept::Kept;
use globset::{GlobBuilder, GlobMatcher};
use praxis_core::Effect;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The built-in tools the default development writ grants.
pub const BUILTIN_TOOLS: [&str; 9] = [
    "list_files",
    "fs_read",
    "grep",
    "repo_map",
    "fs_write",
    "fs_patch",
    "shell",
    "test_run",
    "delegate",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritSpec {
    pub subject: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// RFC 3339 (UTC); absent: valid from issue.
    #[serde(
        default,
        deserialize_with = "de_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<String>,
    /// A duration such as "1h" or "30m"; replaced by `expires_at` when the writ is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// RFC 3339 (UTC).
    #[serde(
        default,
        deserialize_with = "de_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<String>,
    /// The most powerful effect any tool call may have. Absent: `read` (least privilege).
    #[serde(default = "default_ceiling")]
    pub effect_ceiling: Effect,
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
    #[serde(default)]
    pub tools: Vec<ToolGrant>,
    #[serde(default, skip_serializing_if = "Approvals::is_empty")]
    pub approvals: Approvals,
}

/// Limits on what a run may consume; every key is optional (absent: no limit from this block).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_calls: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
}

impl Budget {
    pub fn is_empty(&self) -> bool {
        *self == Budget::default()
    }

    /// Each limit lowered to `cap`'s where `cap` has one (a limit `self` lacks is taken
    /// from `cap`): the budget that fits within both.
    pub fn within(&self, cap: &Budget) -> Budget {
        fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        Budget {
            tool_calls: min(self.tool_calls, cap.tool_calls),
            model_calls: min(self.model_calls, cap.model_calls),
            model_tokens: min(self.model_tokens, cap.model_tokens),
            wall_seconds: min(self.wall_seconds, cap.wall_seconds),
            usd: match (self.usd, cap.usd) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            bytes_written: min(self.bytes_written, cap.bytes_written),
        }
    }

    /// The integer budgets by name, for checks that treat them alike.
    pub(crate) fn integers(&self) -> [(&'static str, Option<u64>); 5] {
        [
            ("tool_calls", self.tool_calls),
            ("model_calls", self.model_calls),
            ("model_tokens", self.model_tokens),
            ("wall_seconds", self.wall_seconds),
            ("bytes_written", self.bytes_written),
        ]
    }

    /// The money limit in millionths of a dollar (how `Spent` counts it).
    pub fn usd_micros(&self) -> Option<u64> {
        self.usd.map(|usd| (usd * 1e6).round() as u64)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToolMode {
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "read-write")]
    ReadWrite,
}

/// One tool the writ grants, with optional argument constraints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolGrant {
    pub name: String,
    /// Globs over workspace-relative paths ("." is the root); absent: any workspace path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Absent: read-write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ToolMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_commands: Option<Vec<String>>,
    /// Variable names (`*` globs) a shell line may assign although they decide what runs
    /// (`PATH`, `LD_*`, ...: see `shell::SENSITIVE_ENV`); absent: none of those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_env: Option<Vec<String>>,
    /// Exact host names or `*.example.com`; absent: no host at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
}

impl ToolGrant {
    pub fn new(name: &str) -> Self {
        ToolGrant {
            name: name.to_string(),
            paths: None,
            mode: None,
            allow_commands: None,
            deny_commands: None,
            allow_env: None,
            hosts: None,
        }
    }

    pub fn mode(&self) -> ToolMode {
        self.mode.unwrap_or(ToolMode::ReadWrite)
    }
}

/// Which proposals need a human decision before they run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// A tool call that would exceed a budget waits for a person's approval instead of
    /// stopping the run (model-call budgets still stop it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub budgets: bool,
}

impl Approvals {
    pub fn is_empty(&self) -> bool {
        *self == Approvals::default()
    }
}

fn default_tenant() -> String {
    "default".to_string()
}

fn default_ceiling() -> Effect {
    Effect::Read
}

/// Accepts an RFC 3339 time as a string (JSON, quoted TOML) or a native TOML datetime.
fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match Option::<toml::Value>::deserialize(d)? {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(toml::Value::Datetime(dt)) => Ok(Some(dt.to_string())),
        Some(other) => Err(D::Error::custom(format!(
            "expected an RFC 3339 time, found a {}",
            other.type_str()
        ))),
    }
}

pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn format_millis(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn parse_time(field: &str, text: &str) -> Result<u64, WritError> {
    humantime::parse_rfc3339_weak(text.trim())
        .map(millis)
        .map_err(|e| {
            WritError::spec(
                field,
                format!("`{text}` is not an RFC 3339 UTC time like 2026-01-31T12:00:00Z ({e})"),
            )
        })
}

impl WritSpec {
    pub fn from_toml_str(text: &str) -> Result<Self, WritError> {
        let spec: WritSpec = toml::from_str(text).map_err(|e| WritError::Parse {
            format: "TOML",
            reason: e.to_string().trim_end().to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn from_json_str(text: &str) -> Result<Self, WritError> {
        let spec: WritSpec = serde_json::from_str(text).map_err(|e| WritError::Parse {
            format: "JSON",
            reason: e.to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads a spec file: `.toml` or `.json` by extension, otherwise TOML then JSON.
    pub fn from_path(path: &Path) -> Result<Self, WritError> {
        let text = std::fs::read_to_string(path).map_err(|source| WritError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml_str(&text),
            Some("json") => Self::from_json_str(&text),
            _ => match Self::from_toml_str(&text) {
                Ok(spec) => Ok(spec),
                // Only fall back to JSON when the text is not TOML at all; a TOML spec with
                // a bad field keeps its TOML error.
                Err(WritError::Parse { .. }) if text.trim_start().starts_with('{') => {
                    Self::from_json_str(&text)
                }
                Err(e) => Err(e),
            },
        }
    }

    /// The default development writ: every built-in tool anywhere in the workspace, up to
    /// `exec` (no network), generous budgets, one day.
    pub fn development(workspace_label: &str) -> Self {
        WritSpec {
            subject: format!("developer@{workspace_label}"),
            tenant: default_tenant(),
            not_before: None,
            expires_in: Some("24h".into()),
            expires_at: None,
            effect_ceiling: Effect::Exec,
            budget: Budget {
                tool_calls: Some(200),
                model_calls: Some(100),
                model_tokens: Some(2_000_000),
                wall_seconds: Some(3600),
                usd: None,
                // What a run's tools and commands may write (and the ledger may keep as
                // blobs): finding 9 grew a ledger by ~1 GB in four calls.
                bytes_written: Some(1 << 30),
            },
            tools: BUILTIN_TOOLS
                .iter()
                .map(|name| ToolGrant {
                    paths: Some(vec!["**".into()]),
                    ..ToolGrant::new(name)
                })
                .collect(),
            approvals: Approvals::default(),
        }
    }

    pub fn tool(&self, name: &str) -> Option<&ToolGrant> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Checks everything serde cannot: contradictions, value ranges, globs, patterns.
    pub fn validate(&self) -> Result<(), WritError> {
        if self.subject.trim().is_empty() {
            return Err(WritError::spec("subject", "must not be empty"));
        }
        if self.tenant.trim().is_empty() {
            return Err(WritError::spec("tenant", "must not be empty"));
        }
        if self.expires_in.is_some() && self.expires_at.is_some() {
            return Err(WritError::spec(
                "expires_in",
                "give either `expires_in` or `expires_at`, not both",
            ));
        }
        if let Some(text) = &self.expires_in {
            let d = humantime::parse_duration(text.trim()).map_err(|e| {
                WritError::spec(
                    "expires_in",
                    format!("`{text}` is not a duration like 30m or 1h ({e})"),
                )
            })?;
            if d.is_zero() {
                return Err(WritError::spec("expires_in", "must be longer than zero"));
            }
        }
        let not_before = self
            .not_before
            .as_deref()
            .map(|t| parse_time("not_before", t))
            .transpose()?;
        let expires_at = self
            .expires_at
            .as_deref()
            .map(|t| parse_time("expires_at", t))
            .transpose()?;
        if let (Some(nb), Some(exp)) = (not_before, expires_at)
            && exp <= nb
        {
            return Err(WritError::spec(
                "expires_at",
                format!(
                    "{} is not after not_before {}",
                    format_millis(exp),
                    format_millis(nb)
                ),
            ));
        }
        if let Some(usd) = self.budget.usd
            && (!usd.is_finite() || usd < 0.0)
        {
            return Err(WritError::spec(
                "budget.usd",
                format!("must be a finite amount >= 0, got {usd}"),
            ));
        }
        for (i, tool) in self.tools.iter().enumerate() {
            validate_tool(i, tool, &self.tools[..i])?;
        }
        for (i, name) in self.approvals.tools.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(WritError::spec(
                    format!("approvals.tools[{i}]"),
                    "must not be empty",
                ));
            }
        }
        if self.approvals.timeout_seconds == Some(0) {
            return Err(WritError::spec(
                "approvals.timeout_seconds",
                "must be at least 1 second",
            ));
        }
        Ok(())
    }

    /// A copy with `expires_in` replaced by the absolute `expires_at` (from `now`), after
    /// validation. Every signed block carries absolute times only, and must expire.
    pub fn resolved(&self, now: SystemTime) -> Result<WritSpec, WritError> {
        self.validate()?;
        let mut spec = self.clone();
        if let Some(text) = spec.expires_in.take() {
            // Validated above, so this parse succeeds; keep the error path anyway.
            let d = humantime::parse_duration(text.trim())
                .map_err(|e| WritError::spec("expires_in", e.to_string()))?;
            let at = now
                .checked_add(d)
                .ok_or_else(|| WritError::spec("expires_in", format!("`{text}` is too far")))?;
            spec.expires_at = Some(format_millis(millis(at)));
        }
        if spec.expires_at.is_none() {
            return Err(WritError::spec(
                "expires_at",
                "a writ must expire: give `expires_in` or `expires_at`",
            ));
        }
        Ok(spec)
    }

    /// The validity window in milliseconds; only meaningful on a resolved spec.
    pub(crate) fn window(&self) -> Result<(Option<u64>, u64), WritError> {
        let nb = self
            .not_before
            .as_deref()
            .map(|t| parse_time("not_before", t))
            .transpose()?;
        let exp = match self.expires_at.as_deref() {
            Some(t) => parse_time("expires_at", t)?,
            None => return Err(WritError::spec("expires_at", "missing")),
        };
        Ok((nb, exp))
    }
}

fn validate_tool(i: usize, tool: &ToolGrant, before: &[ToolGrant]) -> Result<(), WritError> {
    let field = |rest: &str| format!("tools[{i}].{rest}");
    if tool.name.trim().is_empty() {
        return Err(WritError::spec(field("name"), "must not be empty"));
    }
    if let Some(first) = before.iter().position(|t| t.name == tool.name) {
        return Err(WritError::spec(
            field("name"),
            format!("tool `{}` is already listed as tools[{first}]", tool.name),
        ));
    }
    for (j, glob) in tool.paths.iter().flatten().enumerate() {
        let f = field(&format!("paths[{j}]"));
        if glob.is_empty() {
            return Err(WritError::spec(f, "must not be empty"));
        }
        if glob.starts_with('/') || glob.split('/').any(|part| part == "..") {
            return Err(WritError::spec(
                f,
                format!("`{glob}` must be relative to the workspace, without `..`"),
            ));
        }
        compile_glob(glob).map_err(|e| WritError::spec(f, e))?;
    }
    for (list, key) in [
        (&tool.allow_commands, "allow_commands"),
        (&tool.deny_commands, "deny_commands"),
        (&tool.allow_env, "allow_env"),
    ] {
        for (j, pattern) in list.iter().flatten().enumerate() {
            if pattern.trim().is_empty() {
                return Err(WritError::spec(
                    field(&format!("{key}[{j}]")),
                    "must not be empty",
                ));
            }
        }
    }
    for (j, host) in tool.hosts.iter().flatten().enumerate() {
        let rest = host.strip_prefix("*.").unwrap_or(host);
        let valid = !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
            && !rest.starts_with('.')
            && !rest.ends_with('.');
        if !valid {
            return Err(WritError::spec(
                field(&format!("hosts[{j}]")),
                format!("`{host}` is not a host name or `*.domain` pattern"),
            ));
        }
    }
    Ok(())
}

/// Path globs match workspace-relative paths; `*` stays within one path segment, `**`
/// crosses segments.
///
/// Each glob is compiled once per process (a regex: it was half the time of issuing and
/// verifying a writ, which happens at every run's start and step); the first
/// [`GLOB_CACHE_MAX`] distinct globs are kept.
pub(crate) fn compile_glob(glob: &str) -> Result<GlobMatcher, String> {
    static COMPILED: Kept<String, GlobMatcher> = Kept::new(GLOB_CACHE_MAX);
    COMPILED.get_or_try(glob.to_string(), || {
        GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map(|g| g.compile_matcher())
            .map_err(|e| format!("invalid glob `{glob}`: {e}"))
    })
}

/// How many distinct compiled globs a process keeps.
const GLOB_CACHE_MAX: usize = 1024;
