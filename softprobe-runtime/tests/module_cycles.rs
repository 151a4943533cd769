//! The runtime's modules import one another in one direction: no module reaches, through
//! `crate::`, `super::` or `self::` paths, a module that reaches back to it. A cycle makes
//! two modules one unit a reader has to take in together, and it is how a helper ends up in
//! the wrong layer (a host helper in the rules that needs the replay request).
//!
//! The graph has one node per source file (`rules::matcher`, `control`); a module using its
//! own parent or children is not an edge (a `mod.rs` re-exports its children and they use its
//! types). Unit tests at the bottom of a file (`#[cfg(test)] mod tests`) are left out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// One module path, as its segments (`["rules", "matcher"]`; the crate root is empty).
type Module = Vec<String>;

/// Where an import was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Site {
    file: String,
    line: usize,
}

/// Edges of the module graph, each with the first place that made it.
type Graph = BTreeMap<Module, BTreeMap<Module, Site>>;

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".to_owned()
    } else {
        m.join("::")
    }
}

/// The module a file under `src/` defines: `rules/matcher.rs` is `rules::matcher`,
/// `control/mod.rs` is `control`, `lib.rs` is the root.
fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_owned();
        if stem != "mod" && stem != "lib" {
            parts.push(stem);
        }
    }
    parts
}

/// The source with comments, string and character literals blanked (newlines kept, so
/// line numbers still hold), and `#[cfg(test)] mod tests { ... }` blocks removed.
fn code_only(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(&ch) => {
                        blank(&mut out, ch);
                        j += 1;
                    }
                }
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    blank(&mut out, ch);
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: '\n', '\'', '\u{..}'.
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    remove_test_modules(&out)
}

fn remove_test_modules(code: &str) -> String {
    let mut out = code.to_owned();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]").map(|p| p + from) {
        let rest = out[at + 12..].trim_start();
        let start_of_rest = out.len() - rest.len();
        if !rest.starts_with("mod ") {
            from = at + 12;
            continue;
        }
        let Some(open) = out[start_of_rest..].find('{').map(|p| p + start_of_rest) else {
            break;
        };
        let mut depth = 0;
        let mut end = out.len();
        for (k, ch) in out[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let blanked: String = out[at..end]
            .chars()
            .map(|ch| if ch == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..end, &blanked);
        from = end;
    }
    out
}

/// Every path that starts with `crate::`, `super::` or `self::` in `code`, with use-tree
/// groups expanded (`crate::{a::B, c}` gives `crate::a::B` and `crate::c`), and its line.
fn paths(code: &str) -> Vec<(Vec<String>, usize)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || {
            let p = bytes[i - 1];
            !(p.is_ascii_alphanumeric() || p == b'_' || p == b':' || p == b'$')
        };
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| code[i..].starts_with(h));
        match head {
            Some(h) if boundary => {
                let line = code[..i].matches('\n').count() + 1;
                let first = h.trim_end_matches("::").to_owned();
                let (trees, end) = tree(code, i + h.len());
                for mut t in trees {
                    t.insert(0, first.clone());
                    out.push((t, line));
                }
                i = end.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// Parses the rest of a path at `at` (identifiers joined by `::`, ending in an identifier,
/// `*` or a `{...}` group) into its expanded paths; returns them and where parsing stopped.
fn tree(code: &str, mut at: usize) -> (Vec<Vec<String>>, usize) {
    let skip_ws = |at: &mut usize| {
        while code[*at..].starts_with(|c: char| c.is_whitespace()) {
            *at += code[*at..].chars().next().map_or(1, char::len_utf8);
        }
    };
    let mut prefix = Vec::new();
    loop {
        skip_ws(&mut at);
        if code[at..].starts_with('{') {
            at += 1;
            let mut all = Vec::new();
            loop {
                skip_ws(&mut at);
                if code[at..].starts_with('}') {
                    at += 1;
                    break;
                }
                if at >= code.len() {
                    break;
                }
                let (trees, end) = tree(code, at);
                for t in trees {
                    let mut p = prefix.clone();
                    p.extend(t);
                    all.push(p);
                }
                at = end;
                skip_ws(&mut at);
                if code[at..].starts_with(',') {
                    at += 1;
                } else if !code[at..].starts_with('}') {
                    // `as` renames and anything unexpected: skip to the next item.
                    while at < code.len() && !code[at..].starts_with([',', '}']) {
                        at += 1;
                    }
                    if code[at..].starts_with(',') {
                        at += 1;
                    }
                }
            }
            return (all, at);
        }
        let ident: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            return (vec![prefix], at);
        }
        at += ident.len();
        prefix.push(ident);
        if code[at..].starts_with("::") {
            at += 2;
        } else {
            return (vec![prefix], at);
        }
    }
}

/// The module graph of the given files (`(module, file name, source)`).
fn graph(files: &[(Module, String, String)]) -> Graph {
    let modules: BTreeSet<&Module> = files.iter().map(|(m, _, _)| m).collect();
    let mut g = Graph::new();
    for (module, file, src) in files {
        for (path, line) in paths(&code_only(src)) {
            let mut target: Module = Vec::new();
            let mut rest = path.as_slice();
            match rest.first().map(String::as_str) {
                Some("crate") => rest = &rest[1..],
                Some("self") => {
                    target = module.clone();
                    rest = &rest[1..];
                }
                _ => {
                    target = module.clone();
                    while rest.first().map(String::as_str) == Some("super") {
                        target.pop();
                        rest = &rest[1..];
                    }
                }
            }
            target.extend(rest.iter().cloned());
            while !target.is_empty() && !modules.contains(&target) {
                target.pop();
            }
            let related =
                target.starts_with(module.as_slice()) || module.starts_with(target.as_slice());
            if !related {
                g.entry(module.clone())
                    .or_default()
                    .entry(target)
                    .or_insert_with(|| Site {
                        file: file.clone(),
                        line,
                    });
            }
        }
    }
    g
}

/// Each cycle of the graph as the edges that close it, one cycle per strongly connected
/// set of modules (Tarjan), described `a -> b (file:line)`.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        g: &'g Graph,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on_stack: BTreeSet<&'g Module>,
        components: Vec<Vec<&'g Module>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.g.get(v).into_iter().flat_map(BTreeMap::keys) {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.components.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    let mut out = Vec::new();
    for component in t.components {
        let inside: BTreeSet<&Module> = component.iter().copied().collect();
        let start = *inside.iter().next().expect("non-empty");
        // The shortest way from `start` back to itself inside the component.
        let mut came_from: BTreeMap<&Module, &Module> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(v) = queue.pop_front() {
            for w in g[v].keys().filter(|w| inside.contains(w)) {
                if w == start {
                    closing = Some(v);
                    break 'search;
                }
                if !came_from.contains_key(w) {
                    came_from.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let mut walk = vec![start];
        let mut at = closing.expect("a component has a cycle through each of its modules");
        while at != start {
            walk.push(at);
            at = came_from[at];
        }
        walk.push(start);
        walk.reverse();
        // `walk` is start .. start in reverse order of discovery; print it forwards.
        let mut edges = Vec::new();
        for pair in walk.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (a, b) = if g[a].contains_key(b) { (a, b) } else { (b, a) };
            let site = &g[a][b];
            edges.push(format!(
                "{} -> {} ({}:{})",
                name(a),
                name(b),
                site.file,
                site.line
            ));
        }
        let mut all: Vec<String> = component.iter().map(|m| name(m)).collect();
        all.sort();
        edges.insert(0, format!("modules {}", all.join(", ")));
        out.push(edges);
    }
    out
}

fn report(cycles: &[Vec<String>]) -> String {
    cycles
        .iter()
        .map(|c| format!("import cycle:\n  {}", c.join("\n  ")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(Module, String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let relative = path.strip_prefix(root).expect("under src");
        if path.is_dir() {
            // The binaries are crates of their own; they may use anything.
            if relative != Path::new("bin") {
                source_files(&path, root, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push((
                module_of(relative),
                format!("src/{}", relative.display()),
                text,
            ));
        }
    }
}

#[test]
fn runtime_modules_import_each_other_without_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let g = graph(&files);
    // The graph is read, not empty: the engine's layers show up as edges.
    let edge = |a: &str, b: &str| {
        let m = |s: &str| s.split("::").map(str::to_owned).collect::<Module>();
        g.get(&m(a)).is_some_and(|t| t.contains_key(&m(b)))
    };
    assert!(edge("replay", "rules"), "{g:#?}");
    assert!(edge("rules::matcher", "request"), "{g:#?}");
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "{}\nmove what both sides need into a module below them",
        report(&found)
    );
}

fn synthetic(files: &[(&str, &str)]) -> Vec<(Module, String, String)> {
    files
        .iter()
        .map(|(path, src)| {
            (
                module_of(Path::new(path)),
                format!("src/{path}"),
                (*src).to_owned(),
            )
        })
        .collect()
}

/// A host helper in the rules that needs the replay request, while replay uses the rules:
/// the check names both edges with their file and line.
#[test]
fn a_cycle_is_reported_with_each_edge_file_and_line() {
    let files = synthetic(&[
        (
            "rules/matcher.rs",
            "//! Matching.\n\nuse crate::replay::Request;\n",
        ),
        ("rules/mod.rs", "pub(crate) mod matcher;\n"),
        (
            "replay/mod.rs",
            "use std::fmt;\nuse crate::{case::Exchange, rules::{matcher::{split_port, BodyJson}}};\n",
        ),
        (
            "case/mod.rs",
            "use super::rules::Rule; // no cycle: rules never uses case\n",
        ),
        (
            "policy.rs",
            "fn f() { let s = \"crate::replay::x\"; /* crate::replay */ }\n#[cfg(test)]\nmod tests {\n    use crate::replay::Engine;\n}\n",
        ),
    ]);
    let g = graph(&files);
    let found = cycles(&g);
    assert_eq!(
        found,
        vec![vec![
            "modules replay, rules::matcher".to_owned(),
            "replay -> rules::matcher (src/replay/mod.rs:2)".to_owned(),
            "rules::matcher -> replay (src/rules/matcher.rs:3)".to_owned(),
        ]],
        "{g:#?}"
    );
    let text = report(&found);
    assert!(
        text.starts_with("import cycle:\n  modules replay, rules::matcher"),
        "{text}"
    );
    // Strings, comments and unit tests are not imports.
    assert!(!g.contains_key(&vec!["policy".to_owned()]), "{g:#?}");
}

/// A module and its own parent or children are one unit: `mod.rs` re-exports what its
/// children define and they use its types. Three modules in a ring are one cycle.
#[test]
fn parents_and_children_are_not_cycles_but_rings_are() {
    let files = synthetic(&[
        (
            "control/mod.rs",
            "mod router;\npub use router::app;\npub struct AppState;\n",
        ),
        (
            "control/router.rs",
            "use super::AppState;\nuse crate::otlp::handlers::inject;\n",
        ),
        ("otlp/mod.rs", "pub mod handlers;\n"),
        ("otlp/handlers.rs", "use crate::control::AppState;\n"),
    ]);
    assert!(cycles(&graph(&files)).is_empty());

    let ring = synthetic(&[
        ("a.rs", "use crate::b::B;\n"),
        ("b.rs", "use super::c::C;\n"),
        ("c.rs", "fn f() -> crate::a::A { todo!() }\n"),
    ]);
    let found = cycles(&graph(&ring));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].len(), 4, "{found:?}");
    assert_eq!(found[0][0], "modules a, b, c");
}
