//! File arguments that may be globs (`softprobe validate case 'cases/**/*.case.json'`), for
//! shells that pass a pattern through unexpanded (quoted, or matching nothing) and for CI
//! files that name patterns.

use std::path::PathBuf;

use super::output::CliError;

/// Each argument as is, or, when it holds `*`, `?` or `[`, the files it matches in sorted
/// order; a pattern that matches nothing is an error naming it.
pub(crate) fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for arg in args {
        let text = arg.to_string_lossy();
        if !text.contains(['*', '?', '[']) {
            out.push(arg.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| CliError::invalid(format!("{text}: bad glob: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            return Err(CliError::invalid(format!("{text} matches no file")));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}
