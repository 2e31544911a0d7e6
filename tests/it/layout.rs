//! The layout DESIGN.md promises, checked on the source: no import loops between top-level
//! modules, and the pure modules (`policy`, `verify`, `api`) do no I/O of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/policy/judge.rs` → `policy`, `src/cli.rs` → `cli`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The file's code before its `#[cfg(test)]` module: tests may reach anywhere.
fn production_code(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

/// top-level module → the top-level modules its production code names as `crate::X`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = module_of(&src, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(from.clone()).or_default();
        for (at, _) in production_code(&text).match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let in_comment = text[..at]
                .rsplit('\n')
                .next()
                .is_some_and(|line| line.trim_start().starts_with("//"));
            if !name.is_empty() && name != from && !in_comment {
                uses.insert(name);
            }
        }
    }
    graph
}

/// A path that leads from `start` back to it, if any.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in graph.get(last).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_have_no_import_loops() {
    let graph = dependencies();
    assert!(
        graph.contains_key("policy") && graph.contains_key("evidence"),
        "{graph:?}"
    );
    let loops: Vec<String> = graph
        .keys()
        .filter(|m| *m != "cli" && *m != "main" && *m != "lib")
        .filter_map(|m| cycle_through(&graph, m))
        .map(|cycle| cycle.join(" → "))
        .collect();
    assert!(loops.is_empty(), "import loops between top-level modules: {loops:#?}");
}

#[test]
fn pure_modules_reach_no_io_module() {
    let graph = dependencies();
    let io = [
        "evidence",
        "registry",
        "cluster",
        "sources",
        "server",
        "admission",
        "cli",
        "admin",
    ];
    for pure in ["policy", "verify", "api"] {
        let reached: Vec<&String> = graph[pure].iter().filter(|m| io.contains(&m.as_str())).collect();
        assert!(reached.is_empty(), "{pure} uses {reached:?}");
    }
}
