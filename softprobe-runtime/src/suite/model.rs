//! The suite file (`*.suite.yaml`, `spec/protocol/suites.md`): reading it with `${VAR}`
//! expansion and line-numbered errors, then resolving its case globs into [`PlannedCase`]s
//! with the defaults and the per-case overrides already merged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::SuiteError;

/// A suite file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// The suite's name (reports use it).
    pub name: String,
    /// Which cases to run.
    pub cases: CasesSpec,
    /// What every case gets unless it overrides it.
    #[serde(default)]
    pub defaults: CaseSettings,
}

/// `cases`: one glob, a list of globs, or a list of entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CasesSpec {
    /// `cases: "cases/*.case.json"`.
    Glob(String),
    /// `cases: [glob | entry, ...]`.
    List(Vec<CaseEntry>),
}

/// One item of a `cases` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CaseEntry {
    /// A glob.
    Glob(String),
    /// `{path, name, only, skip, overrides}`.
    Detailed(Box<DetailedEntry>),
}

/// `{path, name, only, skip, overrides}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Skip {
    /// `skip: true|false`.
    Flag(bool),
    /// `skip: "why"`.
    Reason(String),
}

/// What a case runs with: `defaults` and `overrides` share this shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Only `case.ingress`: the captured inbound requests of the case, in order.
    pub source: Option<String>,
    /// Replaces the method.
    pub method: Option<String>,
    /// Replaces the path (and query).
    pub path: Option<String>,
    /// Set (or, with `null`, remove) headers.
    pub headers: Option<BTreeMap<String, Option<String>>>,
    /// Replaces the body (a string as is, anything else as JSON).
    pub body: Option<Value>,
    /// A `request` hook that may rewrite the request.
    pub hook: Option<String>,
}

/// One mock.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSpec {
    /// The name overrides merge on.
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
#[serde(deny_unknown_fields)]
pub struct Assertions {
    /// Expected status (default: the captured one).
    pub status: Option<StatusSpec>,
    /// Header checks.
    pub headers: Option<HeaderAssertions>,
    /// Body comparison.
    pub body: Option<BodyAssertions>,
}

/// `status`: `200`, `[200, 201]`, `"2xx"` or `"200-299"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// One code.
    Code(u16),
    /// Any of these.
    List(Vec<u16>),
    /// `"2xx"` or `"200-299"`.
    Range(String),
}

impl StatusSpec {
    /// The inclusive ranges this accepts.
    pub(crate) fn ranges(&self) -> Result<Vec<(u16, u16)>, String> {
        match self {
            StatusSpec::Code(c) => Ok(vec![(*c, *c)]),
            StatusSpec::List(l) if l.is_empty() => Err("an empty list accepts no status".into()),
            StatusSpec::List(l) => Ok(l.iter().map(|c| (*c, *c)).collect()),
            StatusSpec::Range(text) => parse_range(text).map(|r| vec![r]),
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
#[serde(deny_unknown_fields)]
pub struct HeaderAssertions {
    /// Header name → regex its value must match (the header must be present).
    pub include: Option<BTreeMap<String, String>>,
    /// An `assert_headers` hook.
    pub hook: Option<String>,
}

/// `body`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyAssertions {
    /// How the actual body is compared with the captured one.
    pub mode: Option<BodyMode>,
    /// JSON paths left out of the comparison.
    pub ignore: Option<Vec<String>>,
    /// An `assert_body` hook.
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
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands `${VAR}` and `${VAR:-default}` (and `$$` as a literal `$`) line by line, so errors
/// keep their line numbers. `lookup` gives a variable's value.
pub fn expand(
    text: &str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SuiteError> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("$$") {
                out.push('$');
                rest = after;
            } else if let Some(inner) = tail.strip_prefix("${") {
                let end = inner.find('}').ok_or_else(|| {
                    SuiteError::at(path, i + 1, "`${` without a closing `}`".to_owned())
                })?;
                let expr = &inner[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                if !is_var_name(name) {
                    return Err(SuiteError::at(
                        path,
                        i + 1,
                        format!("`${{{expr}}}`: {name:?} is not a variable name"),
                    ));
                }
                let value = match (lookup(name).filter(|v| !v.is_empty()), default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => d.to_owned(),
                    (None, None) => {
                        return Err(SuiteError::at(
                            path,
                            i + 1,
                            format!(
                                "variable {name} is not set (set it, pass --env-file, or write ${{{name}:-default}})"
                            ),
                        ));
                    }
                };
                if value.contains('\n') {
                    return Err(SuiteError::at(
                        path,
                        i + 1,
                        format!("variable {name} holds a newline; suites take one-line values"),
                    ));
                }
                out.push_str(&value);
                rest = &inner[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// Parses an expanded suite text.
pub fn parse(text: &str, path: &Path) -> Result<SuiteFile, SuiteError> {
    if text.trim().is_empty() {
        return Err(SuiteError::at(path, 1, "empty suite file".to_owned()));
    }
    let de = serde_norway::Deserializer::from_str(text);
    let file: SuiteFile = serde_path_to_error::deserialize(de).map_err(|err| {
        let json_path = format!("$.{}", err.path());
        let inner = err.into_inner();
        let line = inner.location().map(|l| l.line()).unwrap_or(1);
        let mut message = inner.to_string();
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        SuiteError::Invalid {
            path: path.to_owned(),
            line,
            message: format!("{json_path}: {message}"),
        }
    })?;
    check(&file, text, path)?;
    Ok(file)
}

/// The first line (1-based) holding `needle`, to point the checks serde cannot make at a
/// line.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

fn check(file: &SuiteFile, text: &str, path: &Path) -> Result<(), SuiteError> {
    let mut all = vec![("defaults", &file.defaults)];
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
        if m.source == Some(MockSource::Inline) && m.response.is_none() {
            return Err(SuiteError::at(
                path,
                line_of(text, &m.name),
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
            for p in b.ignore.iter().flatten() {
                crate::json::PathPattern::parse(p).map_err(|e| {
                    SuiteError::at(path, line_of(text, p), format!("body.ignore {p:?}: {e}"))
                })?;
            }
        }
    }
    Ok(())
}

/// Loads a suite: expand variables (`env` first, then the process environment), parse,
/// resolve the case globs relative to the suite's directory.
pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Suite, SuiteError> {
    let raw = std::fs::read_to_string(path).map_err(|e| SuiteError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let lookup = |name: &str| env.get(name).cloned().or_else(|| std::env::var(name).ok());
    let text = expand(&raw, path, &lookup)?;
    let file = parse(&text, path)?;
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    let cases = plan(&file, &base, &text, path)?;
    Ok(Suite {
        path: path.to_owned(),
        file,
        cases,
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
    let any_only = entries.iter().any(|e| e.only);
    let mut out = Vec::new();
    for e in &entries {
        if any_only && !e.only {
            continue;
        }
        let files = expand_glob(base, &e.path).map_err(|m| {
            SuiteError::at(
                path,
                line_of(text, &e.path),
                format!("cases {:?}: {m}", e.path),
            )
        })?;
        let single = files.len() == 1;
        for f in files {
            let stem = f
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .trim_end_matches(".case.json")
                        .to_owned()
                })
                .unwrap_or_default();
            let name = match (&e.name, single) {
                (Some(n), true) => n.clone(),
                (Some(n), false) => format!("{n}/{stem}"),
                (None, _) => stem,
            };
            let skip = match &e.skip {
                Some(Skip::Flag(true)) => Some("skipped in the suite".to_owned()),
                Some(Skip::Reason(r)) => Some(r.clone()),
                _ => None,
            };
            out.push(PlannedCase {
                name,
                path: f,
                skip,
                settings: merge(&file.defaults, &e.overrides),
            });
        }
    }
    Ok(out)
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

fn expand_glob(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let text = full.to_string_lossy().into_owned();
    let mut files: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| format!("bad glob: {e}"))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("matches no file (looked for {text})"));
    }
    Ok(files)
}

/// Overrides over defaults: request fields one by one, mocks merged by name (an override's
/// fields replace the default's, new names are added), assertion groups one by one, policy
/// replaced.
pub fn merge(defaults: &CaseSettings, over: &CaseSettings) -> CaseSettings {
    let request = match (&defaults.request, &over.request) {
        (Some(d), Some(o)) => Some(RequestSpec {
            source: o.source.clone().or_else(|| d.source.clone()),
            method: o.method.clone().or_else(|| d.method.clone()),
            path: o.path.clone().or_else(|| d.path.clone()),
            headers: match (&d.headers, &o.headers) {
                (Some(a), Some(b)) => {
                    let mut m = a.clone();
                    m.extend(b.clone());
                    Some(m)
                }
                (a, b) => b.clone().or_else(|| a.clone()),
            },
            body: o.body.clone().or_else(|| d.body.clone()),
            hook: o.hook.clone().or_else(|| d.hook.clone()),
        }),
        (d, o) => o.clone().or_else(|| d.clone()),
    };
    let mocks = match (&defaults.mocks, &over.mocks) {
        (Some(d), Some(o)) => {
            let mut list = d.clone();
            for m in o {
                match list.iter_mut().find(|x| x.name == m.name) {
                    Some(x) => {
                        x.matcher = m.matcher.clone().or_else(|| x.matcher.clone());
                        x.source = m.source.or(x.source);
                        x.response = m.response.clone().or_else(|| x.response.clone());
                        x.hook = m.hook.clone().or_else(|| x.hook.clone());
                        x.priority = m.priority.or(x.priority);
                        x.consume = m.consume.clone().or_else(|| x.consume.clone());
                        x.latency_ms = m.latency_ms.or(x.latency_ms);
                    }
                    None => list.push(m.clone()),
                }
            }
            Some(list)
        }
        (d, o) => o.clone().or_else(|| d.clone()),
    };
    let assertions = match (&defaults.assertions, &over.assertions) {
        (Some(d), Some(o)) => Some(Assertions {
            status: o.status.clone().or_else(|| d.status.clone()),
            headers: o.headers.clone().or_else(|| d.headers.clone()),
            body: o.body.clone().or_else(|| d.body.clone()),
        }),
        (d, o) => o.clone().or_else(|| d.clone()),
    };
    CaseSettings {
        request,
        mocks,
        assertions,
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
    fn unknown_keys_are_refused_with_their_line() {
        let err = parse("name: x\ncases: a\ndefaults:\n  asserts: {}\n", p()).unwrap_err();
        assert_eq!(err.line(), Some(4), "{err}");
        assert!(err.to_string().contains("asserts"), "{err}");
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_range("2xx").unwrap(), (200, 299));
        assert_eq!(parse_range("200-204").unwrap(), (200, 204));
        assert!(parse_range("9xx").is_err());
        assert!(parse_range("300-200").is_err());
    }

    #[test]
    fn overrides_merge_mocks_by_name() {
        let d: CaseSettings = serde_norway::from_str(
            "mocks:\n- {name: a, source: case, priority: 5}\n- {name: b, source: case}\n",
        )
        .unwrap();
        let o: CaseSettings = serde_norway::from_str(
            "mocks:\n- {name: a, source: inline, response: {status: 500}}\n- {name: c, source: case}\n",
        )
        .unwrap();
        let m = merge(&d, &o).mocks.unwrap();
        let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(m[0].source, Some(MockSource::Inline));
        assert_eq!(m[0].priority, Some(5));
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
