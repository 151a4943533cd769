//! `softprobe review [PATH...]`: the `.new` evidence failing replays left beside their cases,
//! one at a time, as `cargo insta review` does for snapshots: its hop-by-hop diff against the
//! case, then accept (the `.new` atomically replaces the case), reject (the `.new` is
//! deleted) or skip. `--accept-all`/`--reject-all` decide without asking, `--json` lists what
//! is pending, `--view` opens the drift pages instead.
//!
//! Evidence is named `<case>.new`, or `<case>.<test>.new` when the test that wrote it is known.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use super::output::{CliError, ExitCode, Outcome};
use crate::case::diff::{self, CaseDiff};
use crate::view::{CaseSource, random_key, read_hops};

/// `review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Files or directories to look in (default: the current directory).
    pub paths: Vec<PathBuf>,
    /// Accept every pending case without asking.
    #[arg(long, conflicts_with_all = ["reject_all", "view"])]
    pub accept_all: bool,
    /// Reject every pending case without asking.
    #[arg(long, conflicts_with = "view")]
    pub reject_all: bool,
    /// Open the drift page of every pending case instead of asking in the terminal.
    #[arg(long)]
    pub view: bool,
    /// Port for `--view` on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0, requires = "view")]
    pub port: u16,
}

/// One `.new` file and the case it would replace.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) new: PathBuf,
    pub(crate) case: PathBuf,
    pub(crate) test: Option<String>,
}

/// The case a `.new` belongs to: `x.case.json.new` → `x.case.json`;
/// `x.case.json.my_test.new` → `x.case.json` written by `my_test`.
pub(crate) fn pending_of(new: &Path) -> Option<Pending> {
    let name = new.file_name()?.to_str()?;
    let stem = name.strip_suffix(".new")?;
    let (case_name, test) = match stem.rfind(".json.") {
        Some(i) if !stem.ends_with(".json") => (&stem[..i + 5], Some(stem[i + 6..].to_owned())),
        _ => (stem, None),
    };
    if !case_name.ends_with(".json") {
        return None;
    }
    Some(Pending {
        new: new.to_owned(),
        case: new.with_file_name(case_name),
        test,
    })
}

/// Every pending `.new` under `paths`, sorted; build and VCS directories are not searched.
pub(crate) fn find(paths: &[PathBuf]) -> Result<Vec<Pending>, CliError> {
    let mut out = Vec::new();
    let default = [PathBuf::from(".")];
    let roots = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    for root in roots {
        if root.is_file() {
            match pending_of(root) {
                Some(p) => out.push(p),
                None => {
                    return Err(CliError::invalid(format!(
                        "{} is not case evidence: expected a file named <case>.json.new or <case>.json.<test>.new",
                        root.display()
                    )));
                }
            }
        } else if root.is_dir() {
            walk(root, &mut out);
        } else {
            return Err(CliError::invalid(format!(
                "{}: no such file or directory",
                root.display()
            )));
        }
    }
    out.sort_by(|a, b| a.new.cmp(&b.new));
    out.dedup_by(|a, b| a.new == b.new);
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Pending>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match entry.file_type() {
            Ok(t) if t.is_dir() && !matches!(name.as_ref(), "target" | ".git" | "node_modules") => {
                walk(&path, out);
            }
            Ok(t) if t.is_file() && name.ends_with(".new") => out.extend(pending_of(&path)),
            _ => {}
        }
    }
}

/// The pending case compared with the case it would replace (every hop added when there is
/// no case yet).
fn compare(p: &Pending) -> Result<CaseDiff, CliError> {
    let (_, new) = read_hops(&p.new).map_err(|e| CliError::invalid(e.to_string()))?;
    let old = if p.case.exists() {
        read_hops(&p.case)
            .map_err(|e| CliError::invalid(e.to_string()))?
            .1
    } else {
        Vec::new()
    };
    Ok(diff::compare(&old, &new))
}

fn describe(p: &Pending, d: &CaseDiff) -> Value {
    json!({
        "new": p.new.display().to_string(),
        "case": p.case.display().to_string(),
        "test": p.test,
        "caseExists": p.case.exists(),
        "equal": d.is_equal(),
        "hops": d.hops,
    })
}

/// Replaces the case with the `.new` in one rename (same directory, so atomic).
fn accept(p: &Pending) -> Result<(), CliError> {
    std::fs::rename(&p.new, &p.case).map_err(|e| {
        CliError::new(
            ExitCode::Failure,
            "io",
            format!(
                "cannot move {} over {}: {e}",
                p.new.display(),
                p.case.display()
            ),
        )
    })
}

fn reject(p: &Pending) -> Result<(), CliError> {
    std::fs::remove_file(&p.new).map_err(|e| {
        CliError::new(
            ExitCode::Failure,
            "io",
            format!("cannot delete {}: {e}", p.new.display()),
        )
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Choice {
    Accept,
    Reject,
    Skip,
    Quit,
}

fn ask(n: usize, total: usize) -> Choice {
    let stdin = std::io::stdin();
    loop {
        print!("[{n}/{total}] a accept · r reject · s skip · q quit > ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => return Choice::Quit,
            Ok(_) => {}
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "a" | "accept" => return Choice::Accept,
            "r" | "reject" => return Choice::Reject,
            "s" | "skip" | "" => return Choice::Skip,
            "q" | "quit" => return Choice::Quit,
            other => println!("{other:?}: answer a, r, s or q"),
        }
    }
}

pub(crate) fn run(ctx: &Ctx, args: &ReviewArgs) -> Result<Outcome, CliError> {
    let pending = find(&args.paths)?;
    let asking = !args.accept_all && !args.reject_all && !args.view && !ctx.style.json;
    if asking && !pending.is_empty() && !std::io::stdin().is_terminal() {
        return Err(CliError::new(
            ExitCode::Usage,
            "not_a_terminal",
            format!(
                "{} case(s) to review, but standard input is not a terminal so review cannot ask: pass --accept-all or --reject-all (or --json to list them, --view to look at them)",
                pending.len()
            ),
        ));
    }
    let mut listed = Vec::new();
    let (mut accepted, mut rejected, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let mut quit = false;
    for (i, p) in pending.iter().enumerate() {
        let d = compare(p)?;
        listed.push(describe(p, &d));
        let name = p.new.display().to_string();
        if quit || (!asking && !args.accept_all && !args.reject_all) {
            skipped.push(name);
            continue;
        }
        let choice = if args.accept_all {
            Choice::Accept
        } else if args.reject_all {
            Choice::Reject
        } else {
            println!(
                "\n{} → {}{}",
                p.new.display(),
                p.case.display(),
                p.test
                    .as_ref()
                    .map(|t| format!(" (written by test {t})"))
                    .unwrap_or_default()
            );
            if !p.case.exists() {
                println!("  (no case yet: accepting creates it)");
            }
            print!("{}", d.render_text());
            ask(i + 1, pending.len())
        };
        match choice {
            Choice::Accept => {
                accept(p)?;
                accepted.push(name);
            }
            Choice::Reject => {
                reject(p)?;
                rejected.push(name);
            }
            Choice::Skip => skipped.push(name),
            Choice::Quit => {
                quit = true;
                skipped.push(name);
            }
        }
    }
    let human = if pending.is_empty() {
        "No case is waiting for review.".to_owned()
    } else {
        format!(
            "accepted {}, rejected {}, skipped {}",
            accepted.len(),
            rejected.len(),
            skipped.len()
        )
    };
    Ok(Outcome::ok(
        json!({
            "pending": listed,
            "accepted": accepted,
            "rejected": rejected,
            "skipped": skipped,
        }),
        Some(human),
    ))
}

/// `review --view`: the drift page of every pending case on one loopback port.
pub(crate) fn view(ctx: &Ctx, args: &ReviewArgs) -> u8 {
    let pending = match find(&args.paths) {
        Ok(p) => p,
        Err(e) => return super::output::emit(ctx.style, Err(e)),
    };
    if pending.is_empty() {
        return super::output::emit(
            ctx.style,
            Ok(Outcome::ok(
                json!({"pending": []}),
                Some("No case is waiting for review.".to_owned()),
            )),
        );
    }
    let sources = pending
        .into_iter()
        .map(|p| CaseSource {
            case: if p.case.exists() {
                p.case
            } else {
                p.new.clone()
            },
            against: Some(p.new),
            key: random_key(),
        })
        .collect();
    super::view::serve(ctx, sources, args.port, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_names_map_to_their_case_and_test() {
        let p = pending_of(Path::new("cases/a.case.json.new")).unwrap();
        assert_eq!(p.case, Path::new("cases/a.case.json"));
        assert_eq!(p.test, None);
        let p = pending_of(Path::new("cases/a.case.json.checkout_works.new")).unwrap();
        assert_eq!(p.case, Path::new("cases/a.case.json"));
        assert_eq!(p.test.as_deref(), Some("checkout_works"));
        assert!(pending_of(Path::new("x.snap.new")).is_none());
    }
}
