//! Suite files: variable expansion and the suite reader never panic, and every error names
//! a line that exists in the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use softprobe_runtime::suite::model::{expand, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.suite.yaml");
    let lookup = |name: &str| (name == "CASES_DIR").then(|| "../cases".to_owned());
    let lines = yaml_lines(text);
    let expanded = match expand(text, path, &lookup) {
        Ok(expanded) => expanded,
        Err(e) => {
            check_line(e.line(), lines, &e.to_string());
            return;
        }
    };
    if let Err(e) = parse(&expanded, path) {
        check_line(e.line(), yaml_lines(&expanded), &e.to_string());
    }
});

/// Lines as YAML counts them: a lone `\r` breaks a line too (old Mac files), so
/// `str::lines` would undercount and flag correct line numbers.
fn yaml_lines(text: &str) -> usize {
    text.replace("\r\n", "\n")
        .split(['\n', '\r'])
        .count()
        .max(1)
}

fn check_line(line: Option<usize>, lines: usize, message: &str) {
    if let Some(line) = line {
        assert!(
            (1..=lines + 1).contains(&line),
            "error at line {line} of a {lines}-line file: {message}"
        );
    }
    assert!(
        message.contains("fuzz.suite.yaml"),
        "error without the file: {message}"
    );
}
