//! The spec's documents link to each other, to the schemas and to the fixtures: every relative
//! link must name an existing file, and every `#anchor` an existing heading.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// GitHub's heading anchors: lowercase, punctuation dropped, spaces to dashes.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(heading) = line.strip_prefix('#') {
            let heading = heading.trim_start_matches('#').trim();
            let slug: String = heading
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect();
            out.insert(slug);
        }
    }
    out
}

/// Targets of `[text](target)` links outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// Documents other parts of the project write; until they land, links to them are reported
/// and skipped rather than failing this branch.
const WRITTEN_ELSEWHERE: &[&str] = &["protocol/rules.md", "protocol/session-headers.md"];

#[test]
fn every_relative_link_and_anchor_in_spec_resolves() {
    let spec = root().join("spec");
    let mut docs = Vec::new();
    markdown_files(&spec, &mut docs);
    assert!(docs.len() >= 4, "{docs:?}");
    let mut checked = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            let shown = format!(
                "{}: link {link}",
                doc.strip_prefix(root()).unwrap().display()
            );
            if !target.exists() {
                let relative = target
                    .canonicalize()
                    .unwrap_or_else(|_| target.clone())
                    .strip_prefix(&spec)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let pending = WRITTEN_ELSEWHERE
                    .iter()
                    .any(|w| target.ends_with(w) || relative == *w);
                assert!(pending, "{shown}: no such file {}", target.display());
                eprintln!("{shown}: not written yet, skipped");
                continue;
            }
            if !anchor.is_empty() {
                let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                assert!(
                    headings.contains(anchor),
                    "{shown}: no heading #{anchor} in {} (has {headings:?})",
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} links checked");
}

#[test]
fn anchors_follow_the_heading_slug_rules() {
    let set =
        anchors("# Top\n## `GET /health`\n### The strict-miss answer\n```\n# not a heading\n```\n");
    assert_eq!(
        set.into_iter().collect::<Vec<_>>(),
        ["get-health", "the-strict-miss-answer", "top"]
    );
}
