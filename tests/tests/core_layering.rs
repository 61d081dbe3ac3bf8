//! Core's modules form layers: no import circle between its top-level modules
//! (`error` -> `host` -> `error` was one; `host` <-> `pool` another). Reads the
//! sources, collects every `crate::`/`super::` path per file, maps it to its
//! top-level module and fails on a cycle, naming it. Files inside one module
//! may refer to each other (the engine and the processes it owns do).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().unwrap() != "generated" {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`host` for `host/engine.rs`, `error` for `error.rs`).
fn top(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// Every top-level module `text` names through `crate::x` (and `super::x` from a top-level mod.rs).
fn uses(text: &str) -> BTreeSet<String> {
    let code: String = text.split("#[cfg(test)]").next().unwrap().lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        } else if rest.starts_with('{') {
            // crate::{a, b::c}
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            out.extend(group.split(',').map(|s| s.trim().split("::").next().unwrap_or("").to_string()).filter(|s| !s.is_empty()));
        }
    }
    out
}

#[test]
fn core_modules_import_each_other_in_layers_without_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| top(&root, f)).filter(|m| m != "lib").collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = top(&root, f);
        if from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for to in uses(&text) {
            if to != from && modules.contains(&to) && to != "titan_capnp" {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in &modules {
        if state.get(m.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(m, &graph, &mut state, &mut Vec::new()) {
                panic!("core has an import circle: {}\n(the module graph: {graph:?})", cycle.join(" -> "));
            }
        }
    }
    // The layers this test keeps: errors and states at the bottom, pools above the host.
    assert!(!graph.get("error").is_some_and(|d| d.contains("host")), "error.rs must not import the host");
    assert!(!graph.get("host").is_some_and(|d| d.contains("pool")), "the host must not import pools");
}
