//! Turning a capture session's buffered hops into a case file: where the file goes
//! (`?out=` > `SOFTPROBE_CAPTURE_CASE_PATH` > `e2e/captured.case.json`, with placeholders)
//! and what it contains. The session module owns the buffer; writing is the case model's
//! atomic, deterministic [`Case::write`]. Every path is confined to the [`CaptureRoot`],
//! and two sessions of one process never write the same file ([`WrittenCaptures`]).

mod root;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

pub use root::{CAPTURE_ROOT_ENV, CaptureRoot};

use crate::case::location::CaseLocation;
use crate::case::{Case, CaseMode, Exchange};
use crate::error::Result;

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

/// Where one capture goes: the path as the client or the configuration said it (what
/// the close answer shows) and the file actually written (confined, links resolved, and
/// session-suffixed when another session of this process wrote the same file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureTarget {
    /// The path as asked for, placeholders replaced.
    pub shown: PathBuf,
    /// The file to write.
    pub file: PathBuf,
}

/// Resolves where a capture session's case goes: [`resolve_path`], then
/// [`CaptureRoot::confine`]; then, for a path the client did not name (`out` is `None`:
/// the configured template or the default), [`WrittenCaptures::claim`]. A `?out=` names
/// its file on purpose and replaces it. The storage back ends call this one function
/// before they write.
pub fn target(
    out: Option<&str>,
    template: Option<&str>,
    root: &CaptureRoot,
    written: &WrittenCaptures,
    session_id: &str,
    mode: &str,
    now: SystemTime,
) -> Result<CaptureTarget> {
    let out = out.filter(|s| !s.trim().is_empty());
    let shown = resolve_path(out, template, session_id, mode, now);
    // An object-store location (`s3://…`) is not a file under the capture root; any other
    // scheme is refused here, before anything is written.
    if let CaseLocation::S3 { .. } = CaseLocation::parse(&shown)? {
        return Ok(CaptureTarget {
            file: shown.clone(),
            shown,
        });
    }
    let file = root.confine(&shown)?;
    if out.is_some() {
        written.note(&file, session_id);
        return Ok(CaptureTarget { shown, file });
    }
    let claimed = written.claim(&file, session_id);
    if claimed == file {
        return Ok(CaptureTarget { shown, file });
    }
    let shown = shown.with_file_name(claimed.file_name().unwrap_or_default());
    Ok(CaptureTarget {
        shown,
        file: claimed,
    })
}

/// The capture files this process wrote, by session, so that a session whose path resolves
/// to a file another session wrote (several sessions closed into the default
/// `e2e/captured.case.json`, or flushed there at shutdown) does not replace that capture:
/// it gets a session-suffixed name instead, e.g. `captured.sess_….case.json`, with a
/// warning. A file no longer there (moved away, as the capture guide does) is free again.
#[derive(Debug, Default)]
pub struct WrittenCaptures {
    files: Mutex<HashMap<PathBuf, String>>,
}

impl WrittenCaptures {
    /// The file `session_id` writes for `file`, reserved for it.
    pub fn claim(&self, file: &Path, session_id: &str) -> PathBuf {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        match files.get(file) {
            Some(owner) if owner != session_id && file.exists() => {
                let suffixed = suffixed(file, session_id);
                tracing::warn!(
                    sessionId = session_id,
                    "{} already holds the capture of session {owner}: writing this one to {} \
                     instead; put {{sessionId}} in SOFTPROBE_CAPTURE_CASE_PATH to give every \
                     session its own file",
                    file.display(),
                    suffixed.display()
                );
                files.insert(suffixed.clone(), session_id.to_owned());
                suffixed
            }
            _ => {
                files.insert(file.to_owned(), session_id.to_owned());
                file.to_owned()
            }
        }
    }

    /// Records that `session_id` writes `file` (a path the client named).
    pub fn note(&self, file: &Path, session_id: &str) {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(file.to_owned(), session_id.to_owned());
    }
}

/// `captured.case.json` -> `captured.<id>.case.json`; `x.json` -> `x.<id>.json`.
fn suffixed(file: &Path, session_id: &str) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.strip_suffix(".case.json") {
        Some(stem) => (stem.to_owned(), ".case.json".to_owned()),
        None => match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
            _ => (name.clone(), String::new()),
        },
    };
    file.with_file_name(format!("{stem}.{session_id}{ext}"))
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
    fn a_second_session_never_replaces_the_first_ones_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("captured.case.json");
        let written = WrittenCaptures::default();
        assert_eq!(written.claim(&file, "sess_a"), file);
        std::fs::write(&file, "{}").unwrap();
        assert_eq!(
            written.claim(&file, "sess_a"),
            file,
            "a session rewrites its own file"
        );
        assert_eq!(
            written.claim(&file, "sess_b"),
            dir.path().join("captured.sess_b.case.json")
        );
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            written.claim(&file, "sess_c"),
            file,
            "a moved-away file is free again"
        );
        assert_eq!(
            suffixed(Path::new("a/x.json"), "s"),
            PathBuf::from("a/x.s.json")
        );
        assert_eq!(suffixed(Path::new("a/x"), "s"), PathBuf::from("a/x.s"));
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
