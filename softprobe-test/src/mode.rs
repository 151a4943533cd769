//! Which mode a case test runs in: the attribute's `mode` when given, else `SOFTPROBE_MODE`,
//! else replay. `auto` resolves to replay when the case file exists and to capture otherwise,
//! except under CI (`CI` set), which never captures.

use std::fmt;
use std::path::Path;

/// How a case test treats its case file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Answer outbound calls from the case file and assert the service's responses.
    Replay,
    /// Let outbound calls reach the real upstreams and record everything into the case file.
    Capture,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Replay => "replay",
            Mode::Capture => "capture",
        })
    }
}

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
    Replay,
    Capture,
    Auto,
}

pub(crate) fn parse_requested(value: &str) -> Option<Requested> {
    match value.trim().to_ascii_lowercase().as_str() {
        "replay" => Some(Requested::Replay),
        "capture" | "record" => Some(Requested::Capture),
        "auto" => Some(Requested::Auto),
        _ => None,
    }
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
                format!("SOFTPROBE_MODE={e:?} is not a mode; expected replay, capture or auto")
            })?,
            ModeSource::Environment,
        ),
        (None, None) => (Requested::Replay, ModeSource::Default),
    };
    let mode = match requested {
        Requested::Replay => Mode::Replay,
        Requested::Capture => Mode::Capture,
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
        assert_eq!(r(None, None, false), Ok(Mode::Replay));
        assert_eq!(r(None, Some(""), false), Ok(Mode::Replay));
        assert_eq!(r(None, Some("auto"), false), Ok(Mode::Capture));
        // CI never captures on its own.
        assert_eq!(r(None, Some("auto"), true), Ok(Mode::Replay));
        assert!(
            r(None, Some("recrod"), false)
                .unwrap_err()
                .contains("SOFTPROBE_MODE")
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
