//! The source layout's one rule that a compiler does not check: no import cycle between the
//! files of `src/` (a file that uses another through `crate::...` must not be used by it,
//! directly or through others). The directories' `mod.rs` files only declare modules and are
//! left out.

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

/// The module path of a file under src/: src/control/tunables.rs -> ["control", "tunables"].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The files each file refers to with `crate::a::b...` paths (the longest module prefix that
/// is a file).
fn edges(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "mod.rs"))
        .map(|f| module_of(src, f))
        .filter(|m| !m.is_empty())
        .collect();
    let mut out = BTreeMap::new();
    for file in &files {
        let me = module_of(src, file);
        if me.is_empty() || file.file_name().is_some_and(|n| n == "mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let mut uses = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let path: Vec<String> = text[i + "crate::".len()..]
                .split("::")
                .map(|seg| {
                    seg.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|seg| !seg.is_empty())
                .collect();
            // The longest prefix that names a file.
            if let Some(target) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
            {
                if target != me {
                    uses.insert(target);
                }
            }
        }
        out.insert(me, uses);
    }
    out
}

#[test]
fn no_import_cycle_between_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = edges(&src);
    // The graph is meaningful: the scheduler uses the controller, the controller the tunables.
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert!(graph[&m("scheduler")].contains(&m("control::controller")));
    assert!(graph[&m("control::settings")].contains(&m("control::tunables")));
    // Depth-first search for a back edge.
    fn visit(
        n: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) {
        match state.get(n) {
            Some(2) => return,
            Some(1) => {
                let from = stack.iter().position(|s| s == n).unwrap();
                let cycle: Vec<String> = stack[from..]
                    .iter()
                    .chain([n])
                    .map(|p| p.join("::"))
                    .collect();
                panic!("import cycle: {}", cycle.join(" -> "));
            }
            _ => {}
        }
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for next in graph.get(n).into_iter().flatten() {
            visit(next, graph, state, stack);
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        visit(n, &graph, &mut state, &mut Vec::new());
    }
}
