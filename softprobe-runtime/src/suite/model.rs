//! The suite file (`*.suite.yaml`, `spec/protocol/suites.md`): reading it with `${VAR}`
//! expansion and line-numbered errors, then resolving its case globs into [`PlannedCase`]s
//! with the defaults and the per-case overrides already merged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Visitor};
use serde_json::Value;

use super::SuiteError;
use softprobe_suite_yaml::cases;

use crate::case::validate::locate::{self, Segment};

/// A suite file as written. Unknown keys are ignored with a [`SuiteWarning`] (refused with
/// `--strict-suite`), as the original runner ignores them.
#[derive(Debug, Clone, Deserialize)]
pub struct SuiteFile {
    /// The suite's name (reports use it).
    pub name: String,
    /// The format version (informational, as in the original runner).
    pub version: Option<u32>,
    /// Which cases to run.
    pub cases: CasesSpec,
    /// Values given to JavaScript/TypeScript hooks as `env`.
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// The hook modules the suite expects (informational: `--hooks FILE` loads them).
    pub hooks: Option<Vec<Value>>,
    /// What every case gets unless it overrides it.
    #[serde(default)]
    pub defaults: CaseSettings,
    /// The default request when `defaults` has none (the original's top-level form).
    pub request: Option<RequestSpec>,
    /// The default mocks when `defaults` has none.
    pub mocks: Option<Vec<MockSpec>>,
    /// The default assertions when `defaults` has none.
    pub assertions: Option<Assertions>,
}

impl SuiteFile {
    /// `defaults`, with the top-level `request`, `mocks` and `assertions` filling what it
    /// leaves unset.
    pub fn effective_defaults(&self) -> CaseSettings {
        let d = &self.defaults;
        CaseSettings {
            request: d.request.clone().or_else(|| self.request.clone()),
            mocks: d.mocks.clone().or_else(|| self.mocks.clone()),
            assertions: d.assertions.clone().or_else(|| self.assertions.clone()),
            policy: d.policy.clone(),
        }
    }
}

/// A key the reader ignored: the suite still runs (unless `--strict-suite`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteWarning {
    /// The suite file.
    pub path: PathBuf,
    /// 1-based line of the key.
    pub line: usize,
    /// The key's JSON path, e.g. `$.defaults.asserts`.
    pub key: String,
}

impl std::fmt::Display for SuiteWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: unknown key {} ignored (--strict-suite refuses it)",
            self.path.display(),
            self.line,
            self.key
        )
    }
}

/// `cases`: one glob, a list of globs, or a list of entries.
#[derive(Debug, Clone)]
pub enum CasesSpec {
    /// `cases: "cases/*.case.json"`.
    Glob(String),
    /// `cases: [glob | entry, ...]`.
    List(Vec<CaseEntry>),
}

/// One item of a `cases` list.
#[derive(Debug, Clone)]
pub enum CaseEntry {
    /// A glob.
    Glob(String),
    /// `{path, name, only, skip, overrides}`.
    Detailed(Box<DetailedEntry>),
}

/// `{path, name, only, skip, overrides}`.
#[derive(Debug, Clone, Deserialize)]
pub struct DetailedEntry {
    /// A case file or a glob.
    pub path: String,
    /// The name in reports (default: the file name without `.case.json`).
    pub name: Option<String>,
    /// When any entry says `only: true`, only those entries run.
    #[serde(default)]
    pub only: bool,
    /// `true` or a reason: reported as skipped.
    pub skip: Option<Skip>,
    /// Settings merged over the defaults.
    #[serde(default)]
    pub overrides: CaseSettings,
}

/// `skip: true` or `skip: "reason"`.
#[derive(Debug, Clone)]
pub enum Skip {
    /// `skip: true|false`.
    Flag(bool),
    /// `skip: "why"`.
    Reason(String),
}

/// What a case runs with: `defaults` and `overrides` share this shape.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CaseSettings {
    /// The request sent to the application.
    pub request: Option<RequestSpec>,
    /// Mock rules installed in the case's session (merged by name).
    pub mocks: Option<Vec<MockSpec>>,
    /// What the response must satisfy.
    pub assertions: Option<Assertions>,
    /// The session policy (a policy document, sent as is).
    pub policy: Option<Value>,
}

/// `request`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestSpec {
    /// Only `case.ingress`: the captured inbound requests of the case, in order.
    pub source: Option<String>,
    /// The application's URL (replaces `--app-url`); the path is appended unless the URL
    /// already ends with it.
    pub url: Option<String>,
    /// Replaces the method.
    pub method: Option<String>,
    /// Replaces the path (and query).
    pub path: Option<String>,
    /// Set (or, with `null`, remove) headers.
    pub headers: Option<BTreeMap<String, Option<String>>>,
    /// Replaces the body (a string as is, anything else as JSON).
    pub body: Option<Value>,
    /// A `request` hook that may rewrite the request (`transform` in the original's files).
    #[serde(alias = "transform")]
    pub hook: Option<String>,
}

/// One mock.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MockSpec {
    /// The name an override replaces the mock by; empty for an unnamed mock (named
    /// `mock-N` in its rule, never replaced).
    #[serde(default)]
    pub name: String,
    /// The rule's `when`.
    #[serde(rename = "match")]
    pub matcher: Option<serde_json::Map<String, Value>>,
    /// `case` (answer from the captured hop) or `inline` (answer `response`).
    pub source: Option<MockSource>,
    /// The inline response `{status, headers, body}`.
    pub response: Option<Value>,
    /// A `mock_response` hook that may rewrite the response.
    pub hook: Option<String>,
    /// Rule priority (default 1000 so suite mocks beat the case's own rules).
    pub priority: Option<i64>,
    /// `once` or `many`.
    pub consume: Option<String>,
    /// Delay before answering.
    #[serde(rename = "latencyMs")]
    pub latency_ms: Option<u64>,
}

/// Where a mock's answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MockSource {
    /// The captured outbound hop of the case that the `match` selects.
    Case,
    /// `response`.
    Inline,
}

/// `assertions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Assertions {
    /// Expected status (default: the captured one).
    pub status: Option<StatusSpec>,
    /// Header checks.
    pub headers: Option<HeaderAssertions>,
    /// Body comparison.
    pub body: Option<BodyAssertions>,
}

/// `status`: `200`, `[200, 201]`, `"2xx"`, `"200-299"` or `{min, max}`.
#[derive(Debug, Clone)]
pub enum StatusSpec {
    /// One code.
    Code(u16),
    /// Any of these.
    List(Vec<u16>),
    /// `"2xx"` or `"200-299"`.
    Range(String),
    /// `{min: 200, max: 299}` (either bound may be left out).
    Bounds {
        /// Lowest accepted status (default 100).
        min: Option<u16>,
        /// Highest accepted status (default 599).
        max: Option<u16>,
    },
}

impl StatusSpec {
    /// The inclusive ranges this accepts.
    pub(crate) fn ranges(&self) -> Result<Vec<(u16, u16)>, String> {
        match self {
            StatusSpec::Code(c) => Ok(vec![(*c, *c)]),
            StatusSpec::List(l) if l.is_empty() => Err("an empty list accepts no status".into()),
            StatusSpec::List(l) => Ok(l.iter().map(|c| (*c, *c)).collect()),
            StatusSpec::Range(text) => parse_range(text).map(|r| vec![r]),
            StatusSpec::Bounds { min, max } => {
                let (a, b) = (min.unwrap_or(100), max.unwrap_or(599));
                if a > b {
                    return Err(format!("status {{min: {a}, max: {b}}}: min is above max"));
                }
                Ok(vec![(a, b)])
            }
        }
    }
}

fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let t = text.trim();
    let bad = || format!("status range {text:?}: write \"2xx\" or \"200-299\"");
    // `get`, not indexing: a non-ASCII first character has no boundary at byte 1.
    if t.len() == 3
        && let Some(tail) = t.get(1..)
        && tail.eq_ignore_ascii_case("xx")
    {
        let d = t[..1].parse::<u16>().map_err(|_| bad())?;
        if !(1..=5).contains(&d) {
            return Err(bad());
        }
        return Ok((d * 100, d * 100 + 99));
    }
    let (a, b) = t.split_once('-').ok_or_else(bad)?;
    let (a, b) = (
        a.trim().parse::<u16>().map_err(|_| bad())?,
        b.trim().parse::<u16>().map_err(|_| bad())?,
    );
    if a > b || !(100..=599).contains(&a) || !(100..=599).contains(&b) {
        return Err(bad());
    }
    Ok((a, b))
}

/// `headers`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HeaderAssertions {
    /// Header name (any case) → regex its value must match, unanchored (the header must be
    /// present).
    pub include: Option<BTreeMap<String, String>>,
    /// Header names left out of the check (only `include` checks headers, so this only
    /// documents intent, as in the original runner).
    pub ignore: Option<Vec<String>>,
    /// An `assert_headers` hook (`custom` in the original's files).
    #[serde(alias = "custom")]
    pub hook: Option<String>,
}

/// `body`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BodyAssertions {
    /// How the actual body is compared with the captured one.
    pub mode: Option<BodyMode>,
    /// JSON paths left out of the comparison.
    pub ignore: Option<Vec<String>>,
    /// JSON paths redacted on both sides before the comparison: left out, like `ignore`.
    pub redactions: Option<Vec<String>>,
    /// An `assert_body` hook (`custom` in the original's files).
    #[serde(alias = "custom")]
    pub hook: Option<String>,
}

/// `body.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyMode {
    /// Every captured JSON value must be present and equal in the actual body.
    #[default]
    JsonSubset,
    /// Equal JSON (or equal bytes when not JSON).
    Exact,
    /// Equal text.
    String,
    /// No body check.
    Ignore,
}

impl BodyMode {
    /// As written in a suite.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyMode::JsonSubset => "json-subset",
            BodyMode::Exact => "exact",
            BodyMode::String => "string",
            BodyMode::Ignore => "ignore",
        }
    }
}

// The one-of-several shapes below are read by hand rather than with `#[serde(untagged)]`:
// untagged buffers the value, which loses both the line of a nested error and the unknown
// keys the lenient reader reports.

struct Expecting(&'static str);

impl Expecting {
    fn text(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl<'de> Deserialize<'de> for CasesSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CasesSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                Expecting("a glob or a list of globs and {path, ...} entries").text(f)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CasesSpec, E> {
                Ok(CasesSpec::Glob(v.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<CasesSpec, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(CasesSpec::List)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for CaseEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CaseEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                Expecting("a glob or an entry {path, name, only, skip, overrides}").text(f)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CaseEntry, E> {
                Ok(CaseEntry::Glob(v.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<CaseEntry, A::Error> {
                DetailedEntry::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|e| CaseEntry::Detailed(Box::new(e)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Skip;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                Expecting("true, false or a reason").text(f)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Skip, E> {
                Ok(Skip::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Skip, E> {
                Ok(Skip::Reason(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Bounds {
            min: Option<u16>,
            max: Option<u16>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                Expecting("a status (200), a list ([200, 201]), a range (\"2xx\", \"200-299\") or {min, max}").text(f)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSpec, E> {
                u16::try_from(v)
                    .map(StatusSpec::Code)
                    .map_err(|_| E::custom(format!("status {v} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSpec, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("status {v} is out of range")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusSpec, E> {
                Ok(StatusSpec::Range(v.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<StatusSpec, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(StatusSpec::List)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<StatusSpec, A::Error> {
                let b = Bounds::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(StatusSpec::Bounds {
                    min: b.min,
                    max: b.max,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A case ready to run: its file, its name and its merged settings.
#[derive(Debug, Clone)]
pub struct PlannedCase {
    /// Name in reports.
    pub name: String,
    /// The case file.
    pub path: PathBuf,
    /// Skip reason, when skipped.
    pub skip: Option<String>,
    /// Defaults with the entry's overrides merged.
    pub settings: CaseSettings,
}

/// A loaded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The file it came from.
    pub path: PathBuf,
    /// As written (after expansion).
    pub file: SuiteFile,
    /// The cases, in order.
    pub cases: Vec<PlannedCase>,
    /// Keys the reader ignored, with their lines.
    pub warnings: Vec<SuiteWarning>,
}

impl Suite {
    /// The directory relative paths in the suite are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Reads a `KEY=VALUE` env file (blank lines and `#` comments allowed, optional `export `,
/// values optionally quoted).
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|e| SuiteError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(SuiteError::at(
                path,
                i + 1,
                format!("expected KEY=VALUE, found {line:?}"),
            ));
        };
        let k = k.trim();
        if !is_var_name(k) {
            return Err(SuiteError::at(
                path,
                i + 1,
                format!("{k:?} is not a variable name"),
            ));
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn is_var_name(s: &str) -> bool {
    softprobe_suite_yaml::path::is_identifier(s)
}

/// Expands `${VAR}` and `${VAR:-default}` (and `$$` as a literal `$`) line by line, so errors
/// keep their line numbers. `lookup` gives a variable's value.
pub fn expand(
    text: &str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SuiteError> {
    softprobe_suite_yaml::vars::expand(text, lookup)
        .map_err(|e| SuiteError::at(path, e.line, e.message))
}

/// Parses an expanded suite text leniently (unknown keys are dropped; see [`parse_with`]).
pub fn parse(text: &str, path: &Path) -> Result<SuiteFile, SuiteError> {
    parse_with(text, path, false).map(|(file, _)| file)
}

/// Parses an expanded suite text. Unknown keys come back as warnings naming their line, or,
/// with `strict`, make the first of them an error.
pub fn parse_with(
    text: &str,
    path: &Path,
    strict: bool,
) -> Result<(SuiteFile, Vec<SuiteWarning>), SuiteError> {
    if text.trim().is_empty() {
        return Err(SuiteError::at(path, 1, "empty suite file".to_owned()));
    }
    let mut ignored: Vec<Vec<Segment>> = Vec::new();
    let mut note = |p: serde_ignored::Path<'_>| ignored.push(segments(&p));
    let (file, locator): (SuiteFile, _) =
        crate::yaml::from_str_noting(text, &mut note).map_err(|err| SuiteError::Invalid {
            path: path.to_owned(),
            line: err.line,
            message: format!("{}: {}", err.json_path, err.message),
        })?;
    let mut warnings = Vec::new();
    if !ignored.is_empty() {
        for segs in ignored {
            let key = locate::render(&segs);
            warnings.push(SuiteWarning {
                path: path.to_owned(),
                line: locator.locate(&key).line,
                key,
            });
        }
    }
    if strict && let Some(w) = warnings.first() {
        let name = w.key.rsplit(['.', '[']).next().unwrap_or(&w.key);
        return Err(SuiteError::at(
            path,
            w.line,
            format!(
                "{}: unknown field `{}` (--strict-suite refuses unknown keys; without it they are ignored with a warning)",
                w.key,
                name.trim_end_matches(']').trim_matches('\'')
            ),
        ));
    }
    check(&file, text, path)?;
    Ok((file, warnings))
}

/// The JSON path segments of a key serde ignored.
fn segments(p: &serde_ignored::Path<'_>) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut cur = p;
    loop {
        match cur {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                out.push(Segment::Index(*index));
                cur = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                out.push(Segment::Key(key.clone()));
                cur = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => cur = parent,
        }
    }
    out.reverse();
    out
}

/// The first line (1-based) holding `needle`, to point the checks serde cannot make at a
/// line.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

fn check(file: &SuiteFile, text: &str, path: &Path) -> Result<(), SuiteError> {
    let defaults = file.effective_defaults();
    let mut all = vec![("defaults", &defaults)];
    if let CasesSpec::List(list) = &file.cases {
        for e in list {
            if let CaseEntry::Detailed(d) = e {
                all.push(("overrides", &d.overrides));
            }
        }
    }
    for (_, s) in all {
        check_settings(s, text, path)?;
    }
    Ok(())
}

fn check_settings(s: &CaseSettings, text: &str, path: &Path) -> Result<(), SuiteError> {
    if let Some(r) = &s.request
        && let Some(src) = &r.source
        && src != "case.ingress"
    {
        return Err(SuiteError::at(
            path,
            line_of(text, "source:"),
            format!("request.source {src:?}: the only source is \"case.ingress\""),
        ));
    }
    for m in s.mocks.iter().flatten() {
        let shown = if m.name.is_empty() { "mocks:" } else { &m.name };
        if m.source == Some(MockSource::Inline) && m.response.is_none() {
            return Err(SuiteError::at(
                path,
                line_of(text, shown),
                format!("mock {:?}: source inline needs a response", m.name),
            ));
        }
        if let Some(c) = &m.consume
            && c != "once"
            && c != "many"
        {
            return Err(SuiteError::at(
                path,
                line_of(text, "consume:"),
                format!(
                    "mock {:?}: consume is \"once\" or \"many\", not {c:?}",
                    m.name
                ),
            ));
        }
    }
    if let Some(a) = &s.assertions {
        if let Some(st) = &a.status {
            st.ranges()
                .map_err(|e| SuiteError::at(path, line_of(text, "status:"), e))?;
        }
        if let Some(h) = &a.headers {
            for (name, re) in h.include.iter().flatten() {
                regex::Regex::new(re).map_err(|e| {
                    SuiteError::at(
                        path,
                        line_of(text, re),
                        format!("headers.include.{name}: bad regex: {e}"),
                    )
                })?;
            }
        }
        if let Some(b) = &a.body {
            for p in b.ignore.iter().chain(&b.redactions).flatten() {
                crate::json::PathPattern::parse(p).map_err(|e| {
                    SuiteError::at(path, line_of(text, p), format!("body.ignore {p:?}: {e}"))
                })?;
            }
        }
    }
    Ok(())
}

/// Loads a suite leniently: expand variables (`env` first, then the process environment),
/// parse, resolve the case globs relative to the suite's directory. Ignored keys are in
/// [`Suite::warnings`].
pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Suite, SuiteError> {
    load_with(path, env, false)
}

/// [`load`], refusing unknown keys when `strict`.
pub fn load_with(
    path: &Path,
    env: &BTreeMap<String, String>,
    strict: bool,
) -> Result<Suite, SuiteError> {
    let raw = std::fs::read_to_string(path).map_err(|e| SuiteError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let lookup = |name: &str| env.get(name).cloned().or_else(|| std::env::var(name).ok());
    let text = expand(&raw, path, &lookup)?;
    let (file, warnings) = parse_with(&text, path, strict)?;
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    let cases = plan(&file, &base, &text, path)?;
    Ok(Suite {
        path: path.to_owned(),
        file,
        cases,
        warnings,
    })
}

fn plan(
    file: &SuiteFile,
    base: &Path,
    text: &str,
    path: &Path,
) -> Result<Vec<PlannedCase>, SuiteError> {
    let entries: Vec<DetailedEntry> = match &file.cases {
        CasesSpec::Glob(g) => vec![plain(g)],
        CasesSpec::List(l) => l
            .iter()
            .map(|e| match e {
                CaseEntry::Glob(g) => plain(g),
                CaseEntry::Detailed(d) => (**d).clone(),
            })
            .collect(),
    };
    let listing: Vec<cases::Entry> = entries
        .iter()
        .map(|e| cases::Entry {
            pattern: e.path.clone(),
            name: e.name.clone(),
            only: e.only,
            skip: match &e.skip {
                Some(Skip::Flag(true)) => Some(cases::SKIPPED.to_owned()),
                Some(Skip::Reason(r)) => Some(r.clone()),
                _ => None,
            },
        })
        .collect();
    let listed = cases::list(&listing, base).map_err(|err| {
        let pattern = &entries[err.entry].path;
        SuiteError::at(
            path,
            line_of(text, pattern),
            format!("cases {pattern:?}: {}", err.problem),
        )
    })?;
    let defaults = file.effective_defaults();
    Ok(listed
        .into_iter()
        .map(|c| PlannedCase {
            name: c.name,
            path: c.path,
            skip: c.skip,
            settings: merge(&defaults, &entries[c.entry].overrides),
        })
        .collect())
}

fn plain(glob: &str) -> DetailedEntry {
    DetailedEntry {
        path: glob.to_owned(),
        name: None,
        only: false,
        skip: None,
        overrides: CaseSettings::default(),
    }
}

/// Overrides over defaults, as the original runner merges them: `request`, `assertions` and
/// `policy` given in the override replace the default's whole; a named mock replaces the
/// default mock of the same name whole; other mocks are appended.
pub fn merge(defaults: &CaseSettings, over: &CaseSettings) -> CaseSettings {
    let mocks = match (&defaults.mocks, &over.mocks) {
        (Some(d), Some(o)) => {
            let mut list = d.clone();
            for m in o {
                match list
                    .iter_mut()
                    .find(|x| !m.name.is_empty() && x.name == m.name)
                {
                    Some(x) => *x = m.clone(),
                    None => list.push(m.clone()),
                }
            }
            Some(list)
        }
        (d, o) => o.clone().or_else(|| d.clone()),
    };
    CaseSettings {
        request: over.request.clone().or_else(|| defaults.request.clone()),
        mocks,
        assertions: over
            .assertions
            .clone()
            .or_else(|| defaults.assertions.clone()),
        policy: over.policy.clone().or_else(|| defaults.policy.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("s.suite.yaml")
    }

    #[test]
    fn expansion_uses_values_defaults_and_names_the_line() {
        let env = |n: &str| (n == "HOST").then(|| "example".to_owned());
        let out = expand("a: ${HOST}\nb: ${PORT:-8081}\nc: $$x $y\n", p(), &env).unwrap();
        assert_eq!(out, "a: example\nb: 8081\nc: $x $y\n");
        let err = expand("a: 1\nb: ${MISSING}\n", p(), &env).unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert!(err.to_string().contains("MISSING"), "{err}");
    }

    #[test]
    fn unknown_keys_warn_with_their_line_and_strict_refuses_them() {
        let text =
            "name: x\ncases: a\ndefaults:\n  asserts: {}\n  mocks:\n  - {name: m, colour: red}\n";
        let (_, warnings) = parse_with(text, p(), false).unwrap();
        let found: Vec<_> = warnings.iter().map(|w| (w.key.as_str(), w.line)).collect();
        assert_eq!(
            found,
            [("$.defaults.asserts", 4), ("$.defaults.mocks[0].colour", 6)]
        );
        assert!(
            warnings[0]
                .to_string()
                .starts_with("s.suite.yaml:4: unknown key $.defaults.asserts ignored"),
            "{}",
            warnings[0]
        );
        let err = parse_with(text, p(), true).unwrap_err();
        assert_eq!(err.line(), Some(4), "{err}");
        assert!(err.to_string().contains("unknown field `asserts`"), "{err}");
    }

    #[test]
    fn the_originals_keys_read_with_its_meaning() {
        let text = "name: orig\nversion: 1\nenv: {TENANT: acme}\nhooks: [hooks/a.ts]\ncases:\n  - path: a.case.json\n  - path: a.case.json\n    skip: true\n    overrides:\n      mocks:\n        - name: pay\n          response: {status: 503}\n      assertions: {status: 503}\nrequest:\n  url: http://127.0.0.1:1/checkout\n  method: POST\n  path: /checkout\n  transform: addAuth\nmocks:\n  - name: pay\n    match: {hostSuffix: pay.test}\n    hook: rewritePay\n  - match: {path: /other}\n    response: {status: 200}\nassertions:\n  status: {min: 200, max: 299}\n  headers: {include: {Content-Type: json}, ignore: [date], custom: checkHeaders}\n  body: {mode: string, redactions: ['$.id'], custom: checkBody}\n";
        let (file, warnings) = parse_with(text, p(), true).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(file.version, Some(1));
        let d = file.effective_defaults();
        let r = d.request.as_ref().unwrap();
        assert_eq!(r.hook.as_deref(), Some("addAuth"));
        assert_eq!(r.url.as_deref(), Some("http://127.0.0.1:1/checkout"));
        let a = d.assertions.as_ref().unwrap();
        assert_eq!(a.status.as_ref().unwrap().ranges().unwrap(), [(200, 299)]);
        assert_eq!(
            a.headers.as_ref().unwrap().hook.as_deref(),
            Some("checkHeaders")
        );
        let body = a.body.as_ref().unwrap();
        assert_eq!(body.mode, Some(BodyMode::String));
        assert_eq!(body.hook.as_deref(), Some("checkBody"));
        // The override replaces the named mock and the assertions whole.
        let CasesSpec::List(list) = &file.cases else {
            panic!("a list")
        };
        let CaseEntry::Detailed(e) = &list[1] else {
            panic!("an entry")
        };
        assert!(matches!(e.skip, Some(Skip::Flag(true))));
        let merged = merge(&d, &e.overrides);
        let mocks = merged.mocks.unwrap();
        assert_eq!(mocks.len(), 2);
        assert_eq!(mocks[0].name, "pay");
        assert!(mocks[0].hook.is_none() && mocks[0].matcher.is_none());
        let a = merged.assertions.unwrap();
        assert!(a.headers.is_none() && a.body.is_none());
        assert_eq!(a.status.unwrap().ranges().unwrap(), [(503, 503)]);
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_range("2xx").unwrap(), (200, 299));
        assert_eq!(parse_range("200-204").unwrap(), (200, 204));
        assert!(parse_range("9xx").is_err());
        assert!(parse_range("300-200").is_err());
    }

    #[test]
    fn overrides_replace_named_mocks_whole_and_append_the_rest() {
        let d: CaseSettings = crate::yaml::from_str(
            "mocks:\n- {name: a, source: case, priority: 5}\n- {name: b, source: case}\n- {source: case}\n",
        )
        .unwrap();
        let o: CaseSettings = crate::yaml::from_str(
            "mocks:\n- {name: a, source: inline, response: {status: 500}}\n- {name: c, source: case}\n- {source: inline, response: {status: 201}}\n",
        )
        .unwrap();
        let m = merge(&d, &o).mocks.unwrap();
        let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "", "c", ""]);
        assert_eq!(m[0].source, Some(MockSource::Inline));
        assert_eq!(m[0].priority, None);
    }

    #[test]
    fn env_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(".env");
        std::fs::write(&f, "# c\nexport A=1\nB=\"two words\"\n").unwrap();
        let env = read_env_file(&f).unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        std::fs::write(&f, "A=1\nnonsense\n").unwrap();
        assert_eq!(read_env_file(&f).unwrap_err().line(), Some(2));
    }

    #[test]
    fn globs_only_skip_and_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cases")).unwrap();
        for f in ["b.case.json", "a.case.json"] {
            std::fs::write(dir.path().join("cases").join(f), "{}").unwrap();
        }
        let suite = dir.path().join("s.suite.yaml");
        let write = |text: &str| std::fs::write(&suite, text).unwrap();
        write("name: s\ncases: cases/*.case.json\n");
        let names = |s: &Suite| s.cases.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&load(&suite, &BTreeMap::new()).unwrap()), ["a", "b"]);
        write(
            "name: s\ncases:\n- cases/a.case.json\n- {path: cases/*.case.json, name: all, skip: later}\n",
        );
        let s = load(&suite, &BTreeMap::new()).unwrap();
        assert_eq!(names(&s), ["a", "all/a", "all/b"]);
        assert_eq!(s.cases[2].skip.as_deref(), Some("later"));
        write("name: s\ncases:\n- cases/a.case.json\n- {path: cases/b.case.json, only: true}\n");
        assert_eq!(names(&load(&suite, &BTreeMap::new()).unwrap()), ["b"]);
        write("name: s\ncases:\n- cases/a.case.json\n- cases/zzz*.json\n");
        let err = load(&suite, &BTreeMap::new()).unwrap_err();
        assert_eq!(err.line(), Some(4), "{err}");
    }
}
