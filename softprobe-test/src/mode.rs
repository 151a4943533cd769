//! Which mode a case test runs in: the attribute's `mode` when given, else `SOFTPROBE_MODE`,
//! else replay. `auto` resolves to replay when the case file exists and to capture otherwise,
//! except under CI (`CI` set), which never captures.
//!
//! The mode itself is the runtime's [`Mode`] (re-exported as `softprobe::Mode`): a case test
//! opens a session of that mode, so the harness and the runtime name it alike. In a case test
//! the three modes mean:
//! - [`Mode::Replay`]: outbound calls are answered from the case file (and the test's rules),
//!   the service's responses are compared with the recorded ones;
//! - [`Mode::Capture`]: outbound calls reach the real upstreams and everything is written to
//!   the case file;
//! - [`Mode::Generate`]: outbound calls are answered by the test's rules only
//!   ([`Session::mock`](crate::Session::mock), [`Session::rules`](crate::Session::rules)); no
//!   case file is read or written, a call no rule answers is a strict miss that fails the
//!   test, and the test's own assertions (and snapshots) judge the responses.

use std::path::Path;

pub use softprobe_runtime::Mode;

/// Where the mode came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModeSource {
    Attribute,
    Environment,
    Default,
}

/// The requested mode before `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requested {
    Mode(Mode),
    Auto,
}

/// The names a test may ask for: the runtime's modes (any case), `record` for capture, and
/// `auto`.
pub(crate) fn parse_requested(value: &str) -> Option<Requested> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("auto") {
        return Some(Requested::Auto);
    }
    if value.eq_ignore_ascii_case("record") {
        return Some(Requested::Mode(Mode::Capture));
    }
    value.parse().ok().map(Requested::Mode)
}

/// Resolves the mode of one test.
pub(crate) fn resolve(
    attribute: Option<&str>,
    env_mode: Option<&str>,
    ci: bool,
    case_path: &Path,
) -> Result<(Mode, ModeSource), String> {
    let (requested, source) = match (attribute, env_mode.filter(|v| !v.trim().is_empty())) {
        (Some(a), _) => (
            parse_requested(a).ok_or_else(|| format!("unknown mode {a:?} in the attribute"))?,
            ModeSource::Attribute,
        ),
        (None, Some(e)) => (
            parse_requested(e).ok_or_else(|| {
                format!(
                    "SOFTPROBE_MODE={e:?} is not a mode; expected replay, capture, generate or auto"
                )
            })?,
            ModeSource::Environment,
        ),
        (None, None) => (Requested::Mode(Mode::Replay), ModeSource::Default),
    };
    let mode = match requested {
        Requested::Mode(mode) => mode,
        Requested::Auto if case_path.exists() || ci => Mode::Replay,
        Requested::Auto => Mode::Capture,
    };
    Ok((mode, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_wins_then_environment_then_replay() {
        let missing = Path::new("/nonexistent/x.case.json");
        let r = |a, e, ci| resolve(a, e, ci, missing).map(|(m, _)| m);
        assert_eq!(r(Some("capture"), Some("replay"), false), Ok(Mode::Capture));
        assert_eq!(r(None, Some("capture"), false), Ok(Mode::Capture));
        assert_eq!(r(None, Some("record"), false), Ok(Mode::Capture));
        assert_eq!(r(None, Some("Generate"), false), Ok(Mode::Generate));
        assert_eq!(
            r(Some("generate"), Some("capture"), true),
            Ok(Mode::Generate)
        );
        assert_eq!(r(None, None, false), Ok(Mode::Replay));
        assert_eq!(r(None, Some(""), false), Ok(Mode::Replay));
        assert_eq!(r(None, Some("auto"), false), Ok(Mode::Capture));
        // CI never captures on its own.
        assert_eq!(r(None, Some("auto"), true), Ok(Mode::Replay));
        assert_eq!(
            r(None, Some("recrod"), false).unwrap_err(),
            "SOFTPROBE_MODE=\"recrod\" is not a mode; expected replay, capture, generate or auto"
        );
    }

    #[test]
    fn auto_replays_an_existing_case() {
        let file = std::env::current_exe().unwrap();
        assert_eq!(
            resolve(None, Some("auto"), false, &file).unwrap().0,
            Mode::Replay
        );
    }
}
