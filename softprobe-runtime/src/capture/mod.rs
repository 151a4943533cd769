//! Turning a capture session's buffered hops into a case file: where the file goes
//! (`?out=` > `SOFTPROBE_CAPTURE_CASE_PATH` > `e2e/captured.case.json`, with placeholders)
//! and what it contains. The session module owns the buffer; writing is the case model's
//! atomic, deterministic [`Case::write`].

use std::path::PathBuf;
use std::time::SystemTime;

use crate::case::{Case, CaseMode, Exchange};

/// Where a capture goes when neither `?out=` nor a configured template says otherwise.
pub const DEFAULT_CAPTURE_PATH: &str = "e2e/captured.case.json";

/// Environment variable holding the capture path template.
pub const CAPTURE_PATH_ENV: &str = "SOFTPROBE_CAPTURE_CASE_PATH";

/// A time as RFC 3339 in UTC with second precision, e.g. `2026-04-20T10:30:22Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A time as a compact file-name-friendly stamp, e.g. `20260420T103022Z`.
pub fn file_stamp(time: SystemTime) -> String {
    rfc3339(time).replace(['-', ':'], "")
}

/// The path a capture is written to. `out` (the close call's `?out=`) wins over `template`
/// (the server's configured template), which wins over [`DEFAULT_CAPTURE_PATH`].
/// `{sessionId}`, `{ts}` (see [`file_stamp`]) and `{mode}` are replaced in whichever is used.
pub fn resolve_path(
    out: Option<&str>,
    template: Option<&str>,
    session_id: &str,
    mode: &str,
    now: SystemTime,
) -> PathBuf {
    let chosen = out
        .filter(|s| !s.trim().is_empty())
        .or(template.filter(|s| !s.trim().is_empty()))
        .unwrap_or(DEFAULT_CAPTURE_PATH);
    let mut path = chosen.replace("{sessionId}", session_id);
    if path.contains("{ts}") {
        path = path.replace("{ts}", &file_stamp(now));
    }
    PathBuf::from(path.replace("{mode}", mode))
}

/// The case a capture session becomes: `caseId` as given (the session's case id, else its
/// id), `mode: capture`, created now, one trace document per trace id in arrival order.
pub fn build_case(case_id: &str, exchanges: &[Exchange], now: SystemTime) -> Case {
    let mut case = Case::new(case_id, rfc3339(now));
    case.mode = Some(CaseMode::Capture);
    case.push_exchanges(exchanges);
    case
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_776_681_022)
    }

    #[test]
    fn out_beats_template_beats_default() {
        let t = at();
        assert_eq!(
            resolve_path(Some("a.json"), Some("b.json"), "s", "capture", t),
            PathBuf::from("a.json")
        );
        assert_eq!(
            resolve_path(None, Some("b.json"), "s", "capture", t),
            PathBuf::from("b.json")
        );
        assert_eq!(
            resolve_path(Some(""), None, "s", "capture", t),
            PathBuf::from(DEFAULT_CAPTURE_PATH)
        );
    }

    #[test]
    fn placeholders_are_replaced() {
        let p = resolve_path(
            None,
            Some("cases/{mode}/{sessionId}-{ts}.case.json"),
            "sess_abc",
            "capture",
            at(),
        );
        assert_eq!(
            p,
            PathBuf::from("cases/capture/sess_abc-20260420T103022Z.case.json")
        );
    }

    #[test]
    fn built_case_is_a_capture() {
        let case = build_case("sess_abc", &[], at());
        assert_eq!(case.case_id, "sess_abc");
        assert_eq!(case.mode, Some(CaseMode::Capture));
        assert_eq!(case.created_at, "2026-04-20T10:30:22Z");
        assert!(case.traces.is_empty());
    }
}
