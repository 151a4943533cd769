//! The results of a suite run and their three renderings: JUnit XML for CI systems
//! (`testsuites/testsuite/testcase`, failures carrying the diff; the `junit` feature, which
//! `cli` turns on), one self-contained HTML page with a per-case diff, and a JSON summary.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// One failed check.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// `status`, `headers`, `body`, `hook`, `runtime`, `request`...
    pub kind: String,
    /// One line for people.
    pub message: String,
    /// `-` expected / `+` actual lines, when there is something to compare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// How a case ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// Every check held.
    Passed,
    /// At least one check failed.
    Failed,
    /// Not run.
    Skipped,
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseResult {
    /// Name in reports.
    pub name: String,
    /// The case file.
    pub path: String,
    /// How it ended.
    pub status: CaseStatus,
    /// Wall time.
    pub duration_ms: f64,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// What failed.
    pub failures: Vec<Failure>,
    /// The captured responses (`{status, headers, body}`), for the HTML report.
    #[serde(skip)]
    pub expected: Vec<Value>,
    /// The actual responses.
    #[serde(skip)]
    pub actual: Vec<Value>,
}

/// The result of a suite run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteReport {
    /// The suite's name.
    pub suite: String,
    /// Cases planned (after the filter).
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped (including those `--fail-fast` did not start).
    pub skipped: usize,
    /// Wall time of the run.
    pub duration_ms: f64,
    /// Cases run per second.
    pub cases_per_second: f64,
    /// Every case, in suite order.
    pub cases: Vec<CaseResult>,
}

impl SuiteReport {
    /// Builds the totals from the case results.
    pub fn new(suite: String, cases: Vec<CaseResult>, duration: std::time::Duration) -> Self {
        let count = |s| cases.iter().filter(|c| c.status == s).count();
        let (passed, failed, skipped) = (
            count(CaseStatus::Passed),
            count(CaseStatus::Failed),
            count(CaseStatus::Skipped),
        );
        let secs = duration.as_secs_f64();
        SuiteReport {
            suite,
            total: cases.len(),
            passed,
            failed,
            skipped,
            duration_ms: round(secs * 1000.0),
            cases_per_second: if secs > 0.0 {
                round((passed + failed) as f64 / secs)
            } else {
                0.0
            },
            cases,
        }
    }

    /// True when no case failed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// The JSON summary.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// JUnit XML (written by [`quick_junit`]): one `testsuite` named after the suite, one
    /// `testcase` per case with its file in a `file` attribute; a failure's message joins the
    /// case's failure messages, its type is the first failure's kind and its text is the
    /// failures with their diffs. Built with the `junit` feature (part of `cli`).
    #[cfg(feature = "junit")]
    pub fn junit(&self) -> String {
        let time = |ms: f64| std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        let mut suite = quick_junit::TestSuite::new(self.suite.as_str());
        suite.set_time(time(self.duration_ms));
        for c in &self.cases {
            let status = match c.status {
                CaseStatus::Passed => quick_junit::TestCaseStatus::success(),
                CaseStatus::Skipped => {
                    let mut s = quick_junit::TestCaseStatus::skipped();
                    s.set_message(c.skip_reason.as_deref().unwrap_or("skipped"));
                    s
                }
                CaseStatus::Failed => {
                    let mut s = quick_junit::TestCaseStatus::non_success(
                        quick_junit::NonSuccessKind::Failure,
                    );
                    let message = c
                        .failures
                        .iter()
                        .map(|f| f.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    s.set_message(message)
                        .set_type(c.failures.first().map_or("failure", |f| f.kind.as_str()))
                        .set_description(failures_text(&c.failures));
                    s
                }
            };
            let mut case = quick_junit::TestCase::new(c.name.as_str(), status);
            case.set_classname(self.suite.as_str())
                .set_time(time(c.duration_ms));
            case.extra.insert("file".into(), c.path.as_str().into());
            suite.add_test_case(case);
        }
        let mut report = quick_junit::Report::new(self.suite.as_str());
        report
            .set_time(time(self.duration_ms))
            .add_test_suite(suite);
        // Serialising into memory has no I/O that could fail.
        report
            .to_string()
            .expect("a JUnit report is written to memory")
    }

    /// One self-contained HTML page: totals, then one section per case, failed ones open,
    /// with the diff and the expected and actual responses side by side.
    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{} — softprobe suite</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
            html(&self.suite)
        );
        let _ = writeln!(
            h,
            "<h1>Suite {}</h1>\n<p class=\"totals\"><span class=\"passed\">{} passed</span> <span class=\"failed\">{} failed</span> <span class=\"skipped\">{} skipped</span> {}</p>",
            html(&self.suite),
            self.passed,
            self.failed,
            self.skipped,
            self.scale()
        );
        let mut ordered: Vec<&CaseResult> = self.cases.iter().collect();
        ordered.sort_by_key(|c| match c.status {
            CaseStatus::Failed => 0,
            CaseStatus::Skipped => 1,
            CaseStatus::Passed => 2,
        });
        for c in ordered {
            let status = match c.status {
                CaseStatus::Passed => "passed",
                CaseStatus::Failed => "failed",
                CaseStatus::Skipped => "skipped",
            };
            let _ = writeln!(
                h,
                "<details class=\"case {status}\"{}>\n<summary><span class=\"badge\">{status}</span> {} <small>{} · {:.1} ms</small></summary>",
                if c.status == CaseStatus::Failed {
                    " open"
                } else {
                    ""
                },
                html(&c.name),
                html(&c.path),
                c.duration_ms
            );
            if let Some(r) = &c.skip_reason {
                let _ = writeln!(h, "<p>{}</p>", html(r));
            }
            for f in &c.failures {
                let _ = writeln!(
                    h,
                    "<p class=\"message\"><b>{}</b>: {}</p>",
                    html(&f.kind),
                    html(&f.message)
                );
                if let Some(d) = &f.diff {
                    h.push_str("<pre class=\"diff\">");
                    for line in d.lines() {
                        let class = match line.chars().next() {
                            Some('-') => "del",
                            Some('+') => "add",
                            _ => "ctx",
                        };
                        let _ = writeln!(h, "<span class=\"{class}\">{}</span>", html(line));
                    }
                    h.push_str("</pre>\n");
                }
            }
            if c.status == CaseStatus::Failed {
                for (i, (e, a)) in c.expected.iter().zip(&c.actual).enumerate() {
                    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
                    let _ = writeln!(
                        h,
                        "<div class=\"pair\"><div><h4>expected (captured) #{i}</h4><pre>{}</pre></div><div><h4>actual #{i}</h4><pre>{}</pre></div></div>",
                        html(&pretty(e)),
                        html(&pretty(a))
                    );
                }
            }
            h.push_str("</details>\n");
        }
        h.push_str("</body>\n</html>\n");
        h
    }

    /// A few lines for people: totals and each failure.
    pub fn summary_text(&self) -> String {
        let mut t = String::new();
        for c in self.cases.iter().filter(|c| c.status == CaseStatus::Failed) {
            let _ = writeln!(t, "FAIL {} ({})", c.name, c.path);
            for line in failures_text(&c.failures).lines() {
                let _ = writeln!(t, "    {line}");
            }
        }
        let _ = writeln!(
            t,
            "suite {}: {} passed, {} failed, {} skipped {}",
            self.suite,
            self.passed,
            self.failed,
            self.skipped,
            self.scale()
        );
        t
    }

    /// `of 200 in 1.52 s (131 cases/s)`: the end of both reports' totals line.
    fn scale(&self) -> String {
        format!(
            "of {} in {:.2} s ({:.0} cases/s)",
            self.total,
            self.duration_ms / 1000.0,
            self.cases_per_second
        )
    }
}

/// Failures as the reports print them: `kind: message` lines, each followed by its diff.
pub fn failures_text(failures: &[Failure]) -> String {
    let mut t = String::new();
    for f in failures {
        let _ = writeln!(t, "{}: {}", f.kind, f.message);
        if let Some(d) = &f.diff {
            t.push_str(d);
            if !d.ends_with('\n') {
                t.push('\n');
            }
        }
    }
    t
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
.totals span{margin-right:1em;font-weight:bold}.passed .badge,.totals .passed{color:#1a7f37}\
.failed .badge,.totals .failed{color:#cf222e}.skipped .badge,.totals .skipped{color:#9a6700}\
details{border:1px solid #ddd;border-radius:6px;margin:.4em 0;padding:.3em .8em}\
summary{cursor:pointer}.badge{font-weight:bold;text-transform:uppercase;font-size:.8em}\
pre{background:#f6f8fa;padding:.6em;overflow:auto}.diff .del{color:#cf222e;display:block}\
.diff .add{color:#1a7f37;display:block}.diff .ctx{display:block}\
.pair{display:flex;gap:1em}.pair>div{flex:1;min-width:0}";

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SuiteReport {
        let case = |name: &str, status, failures| CaseResult {
            name: name.into(),
            path: format!("cases/{name}.case.json"),
            status,
            duration_ms: 1.0,
            skip_reason: None,
            failures,
            expected: vec![serde_json::json!({"status": 200})],
            actual: vec![serde_json::json!({"status": 500})],
        };
        SuiteReport::new(
            "s<&>".into(),
            vec![
                case("a", CaseStatus::Passed, vec![]),
                case(
                    "b",
                    CaseStatus::Failed,
                    vec![Failure {
                        kind: "status".into(),
                        message: "status 500, expected 200".into(),
                        diff: Some("- status: 200\n+ status: 500\n".into()),
                    }],
                ),
            ],
            std::time::Duration::from_secs(1),
        )
    }

    #[cfg(feature = "junit")]
    #[test]
    fn junit_escapes_and_carries_the_diff() {
        let mut r = report();
        r.cases.push(CaseResult {
            name: "c\u{1b}[31m\u{7}".into(),
            status: CaseStatus::Skipped,
            skip_reason: Some("not on CI".into()),
            ..r.cases[0].clone()
        });
        let x = r.junit();
        for attrs in [
            r#"<testsuites name="s&lt;&amp;&gt;" tests="3" skipped="1" failures="1" errors="0" time="1.000">"#,
            r#"<testsuite name="s&lt;&amp;&gt;" tests="3" skipped="1" errors="0" failures="1" time="1.000">"#,
            r#"<testcase name="a" classname="s&lt;&amp;&gt;" time="0.001" file="cases/a.case.json"/>"#,
            r#"<failure message="status 500, expected 200" type="status">"#,
            r#"<skipped message="not on CI"/>"#,
        ] {
            assert!(x.contains(attrs), "{attrs} in\n{x}");
        }
        assert!(
            x.contains("- status: 200\n+ status: 500\n</failure>"),
            "{x}"
        );

        // Valid XML that reads back with every case, the skipped case's name stripped of the
        // terminal escape and the control character XML 1.0 does not allow.
        let back = quick_junit::Report::deserialize_from_str(&x).unwrap();
        let cases = &back.test_suites[0].test_cases;
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let quick_junit::TestCaseStatus::NonSuccess { description, .. } = &cases[1].status else {
            panic!("case b is not a failure: {:?}", cases[1].status);
        };
        assert_eq!(
            description.as_ref().map(|d| d.as_str()),
            Some("status: status 500, expected 200\n- status: 200\n+ status: 500")
        );
    }

    #[test]
    fn html_shows_failures_first_with_their_diff() {
        let h = report().html();
        let b = h.find("<details class=\"case failed\" open>").unwrap();
        let a = h.find("<details class=\"case passed\">").unwrap();
        assert!(b < a);
        assert!(h.contains("<span class=\"del\">- status: 200</span>"));
        assert!(!h.contains("<script"));
    }
}
