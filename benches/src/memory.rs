//! Row 7: memory of 1,000 open replay sessions each holding a 20 KB case, against the same
//! case bytes held raw 1,000 times. Each side runs in its own child process (this binary,
//! `mem <side> <count>`) so each peak resident set (`VmHWM`) is its own.

use std::process::Command;

use softprobe_runtime::case::Case;
use softprobe_runtime::session::{InMemoryStore, NewSession, SessionStore};

use crate::support::sized_case;

/// The size of each session's case.
pub(crate) const CASE_BYTES: usize = 20 * 1024;

/// The peak resident set of this process, in KiB, from `/proc/self/status`.
pub(crate) fn peak_rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM line in /proc/self/status".to_owned())
}

/// The child side: holds `count` copies the `side` way, then prints `peak=<KiB> bytes=<n>`.
pub(crate) fn child(side: &str, count: usize) -> Result<(), String> {
    let bytes = sized_case(CASE_BYTES);
    match side {
        "sessions" => {
            let store = InMemoryStore::new();
            for i in 0..count {
                let session = store
                    .create(NewSession::new(softprobe_runtime::Mode::Replay))
                    .map_err(|e| format!("session {i}: {e}"))?;
                // Each session parses its own copy, as `load-case` does with a request body.
                let case = Case::from_slice_named(&bytes, "bench-20k.case.json")
                    .map_err(|e| e.to_string())?;
                store
                    .update(session.id(), &mut |state| {
                        state
                            .load_case(case.clone(), "bench-20k.case.json")
                            .map(|_| ())
                    })
                    .map_err(|e| format!("session {i}: {e}"))?;
            }
            let peak = peak_rss_kib()?;
            assert_eq!(store.len(), count);
            println!("peak={peak} bytes={}", bytes.len());
        }
        "raw" => {
            let held: Vec<Vec<u8>> = (0..count).map(|_| bytes.clone()).collect();
            let peak = peak_rss_kib()?;
            assert_eq!(held.len(), count);
            println!("peak={peak} bytes={}", bytes.len());
        }
        other => return Err(format!("mem: unknown side {other:?} (sessions or raw)")),
    }
    Ok(())
}

/// One side's figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Side {
    pub(crate) peak_kib: u64,
    pub(crate) case_bytes: u64,
}

/// Runs one side in a child process of this binary.
pub(crate) fn measure(side: &str, count: usize) -> Result<Side, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let out = Command::new(&exe)
        .args(["mem", side, &count.to_string()])
        .output()
        .map_err(|e| format!("cannot run {} mem {side}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} mem {side} failed ({}): {}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("mem {side}: no {name} in its output {text:?}"))
    };
    Ok(Side {
        peak_kib: field("peak=")?,
        case_bytes: field("bytes=")?,
    })
}
