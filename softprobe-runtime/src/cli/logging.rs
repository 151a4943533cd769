//! The runtime binary's log: which lines (`--log` / `SOFTPROBE_LOG`, else `RUST_LOG`, else
//! `info`), in which form (`--log-format text|json`), with colour only on a terminal and
//! without `NO_COLOR`. Lines go to stderr.

use std::io::IsTerminal as _;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The filter in force: `flag` (from `--log` or `SOFTPROBE_LOG`) wins over `RUST_LOG`.
pub fn filter_text(flag: Option<&str>, rust_log: Option<&str>) -> String {
    flag.filter(|f| !f.trim().is_empty())
        .or(rust_log.filter(|f| !f.trim().is_empty()))
        .unwrap_or("info")
        .to_owned()
}

/// Installs the global subscriber. Fails with the message to print for a bad filter.
pub fn init(flag: Option<&str>, format: LogFormat) -> Result<(), String> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let text = filter_text(flag, rust_log.as_deref());
    let filter = tracing_subscriber::EnvFilter::try_new(&text).map_err(|err| {
        format!("invalid log filter {text:?} (--log, SOFTPROBE_LOG or RUST_LOG): {err}")
    })?;
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::filter_text;

    #[test]
    fn softprobe_log_wins_over_rust_log() {
        assert_eq!(filter_text(Some("debug"), Some("warn")), "debug");
        assert_eq!(filter_text(None, Some("warn")), "warn");
        assert_eq!(filter_text(Some(" "), Some("warn")), "warn");
        assert_eq!(filter_text(None, None), "info");
    }
}
