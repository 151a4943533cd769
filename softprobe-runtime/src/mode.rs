//! The mode of a session: what the runtime does with the traffic it sees.
//!
//! Shared by the control API (`POST /v1/sessions`), the replay engine (only `replay` answers
//! from the loaded case) and the CLI.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a session does with its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Record every hop so it can be written as a case file.
    Capture,
    /// Answer outbound calls from the loaded case (and rules).
    Replay,
    /// Answer from rules only; used to generate cases by hand or by a tool.
    Generate,
}

impl Mode {
    /// Every mode, in the order the API lists them.
    pub const ALL: [Mode; 3] = [Mode::Capture, Mode::Replay, Mode::Generate];

    /// The lowercase name: `capture`, `replay` or `generate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Capture => "capture",
            Mode::Replay => "replay",
            Mode::Generate => "generate",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is none of `capture`, `replay`, `generate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}: expected one of \"capture\", \"replay\", \"generate\"")]
pub struct ParseModeError(pub String);

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseModeError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_displays_lowercase() {
        assert_eq!("Replay".parse::<Mode>().unwrap(), Mode::Replay);
        assert_eq!("CAPTURE".parse::<Mode>().unwrap(), Mode::Capture);
        assert_eq!(Mode::Generate.to_string(), "generate");
        let err = "record".parse::<Mode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown mode \"record\": expected one of \"capture\", \"replay\", \"generate\""
        );
    }

    #[test]
    fn serde_uses_lowercase_names() {
        assert_eq!(serde_json::to_string(&Mode::Replay).unwrap(), "\"replay\"");
        let m: Mode = serde_json::from_str("\"capture\"").unwrap();
        assert_eq!(m, Mode::Capture);
        assert!(serde_json::from_str::<Mode>("\"Capture\"").is_err());
    }
}
