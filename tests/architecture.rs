//! The house's rule, checked on the source itself: the folders of `src/` are
//! floors, and a module imports only from its own folder or a lower floor;
//! and no module of `src/`, `client-rs/src/` or `bench/src/` imports itself
//! round a circle. README.md's ARCHITECTURE section draws the same floors.
//!
//! Imports are read as `../shared/tools/circles.py` reads them: every
//! `crate::`, `super::` or `self::` path outside comments and the unit
//! tests at the end of a file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The floors of `src/`, lowest first; the files at the top of `src/`
/// (the loop, its settings, shutdown, `lib.rs`, `main.rs`) are the top floor.
const FLOORS: &[&[&str]] = &[
    &["support"],
    &["wire"],
    &["bets"],
    &["store", "net", "observe"],
    &["central"],
    &["connections"],
];
const TOP: usize = FLOORS.len();

type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/store/csv.rs` is `["store", "csv"]`; `mod.rs`, `lib.rs` and
/// `main.rs` name their folder.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The code of a file without comments and without its unit tests.
fn code_of(file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path after `crate::`, `super::` or `self::`, groups expanded one
/// level (`crate::a::{b, c}` is `a::b` and `a::c`), made absolute.
fn imports(module: &Module, code: &str) -> Vec<Module> {
    let mut out = Vec::new();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    for root in ["crate::", "super::", "self::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(root) {
            let start = at + i;
            at = start + root.len();
            if start > 0 && code[..start].ends_with(ident) {
                continue;
            }
            let base: Module = match root {
                "crate::" => Vec::new(),
                "super::" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.clone(),
            };
            let rest = &code[at..];
            let end = rest
                .find(|c: char| !(ident(c) || c == ':'))
                .unwrap_or(rest.len());
            let head: Module = rest[..end]
                .split("::")
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            let mut prefix = base.clone();
            prefix.extend(head.iter().cloned());
            if rest[end..].starts_with('{') {
                let close = rest[end..].find('}').unwrap_or(rest.len() - end);
                for item in rest[end + 1..end + close].split(',') {
                    let mut path = prefix.clone();
                    path.extend(
                        item.split(" as ")
                            .next()
                            .unwrap()
                            .trim()
                            .split("::")
                            .filter(|p| !p.is_empty() && *p != "self")
                            .map(str::to_string),
                    );
                    out.push(path);
                }
            } else {
                out.push(prefix);
            }
        }
    }
    out
}

/// module -> the modules it imports (the longest prefix of each path that
/// is a module of the crate, itself left out).
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let mut targets = BTreeSet::new();
        for path in imports(module, &code_of(file)) {
            if let Some(k) = (1..=path.len())
                .rev()
                .find(|&k| modules.contains_key(&path[..k]) && path[..k] != module[..])
            {
                targets.insert(path[..k].to_vec());
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The circles of `graph`: every module that can reach itself, with the
/// path that shows it.
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut found = Vec::new();
    for start in graph.keys() {
        // Depth-first from `start`, looking for a way back to it.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in &graph[&at] {
                if next == start {
                    let names: Vec<String> = path.iter().map(|m| m.join("::")).collect();
                    found.push(format!("{} -> {}", names.join(" -> "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found
}

fn floor_of(module: &Module) -> usize {
    let folder = module.first().map(String::as_str).unwrap_or("");
    FLOORS
        .iter()
        .position(|floor| floor.contains(&folder))
        .unwrap_or(TOP)
}

/// A module's folder: its first part, or "" for the files at the top.
fn folder_of(module: &Module) -> &str {
    if floor_of(module) == TOP {
        ""
    } else {
        &module[0]
    }
}

fn crate_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The imports of `src` that point up a floor, or sideways to another
/// folder of the same floor.
fn upward_imports(src: &Path) -> Vec<String> {
    let mut wrong = Vec::new();
    for (from, targets) in graph(src) {
        for to in targets {
            let (a, b) = (floor_of(&from), floor_of(&to));
            if b > a || (b == a && folder_of(&from) != folder_of(&to)) {
                wrong.push(format!(
                    "{} (floor {a}) imports {} (floor {b})",
                    from.join("::"),
                    to.join("::")
                ));
            }
        }
    }
    wrong
}

#[test]
fn every_import_of_the_central_and_of_the_shared_crate_points_down_a_floor_or_within_its_folder() {
    // The floors `wire` and `bets` (and part of `support`) are the shared
    // crate's (`proto/`), re-exported by the central under the same names:
    // one set of floors for both crates.
    let (src, proto) = (crate_dir("src"), crate_dir("proto/src"));
    for folder in FLOORS.iter().flat_map(|f| f.iter()) {
        assert!(
            src.join(folder).is_dir() || proto.join(folder).is_dir(),
            "{folder} is a floor but missing from src/ and proto/src/"
        );
    }
    for dir in [&src, &proto] {
        let wrong = upward_imports(dir);
        assert!(
            wrong.is_empty(),
            "imports against the floors in {}:\n{}",
            dir.display(),
            wrong.join("\n")
        );
    }
}

#[test]
fn no_module_of_the_central_the_shared_crate_the_agency_or_the_bench_imports_itself_round_a_circle()
{
    for dir in ["src", "proto/src", "client-rs/src", "bench/src"] {
        let found = circles(&graph(&crate_dir(dir)));
        assert!(found.is_empty(), "circles in {dir}:\n{}", found.join("\n"));
    }
}

#[test]
fn the_checks_see_an_upward_import_and_a_circle() {
    // A crate of three files, written here: the checks must fail on it.
    let dir = std::env::temp_dir().join(format!("lottery-architecture-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("wire")).unwrap();
    fs::create_dir_all(dir.join("central")).unwrap();
    fs::write(dir.join("lib.rs"), "pub mod wire;\npub mod central;\n").unwrap();
    fs::write(dir.join("wire/mod.rs"), "pub mod frame;\n").unwrap();
    fs::write(
        dir.join("wire/frame.rs"),
        "use crate::central::state::Central; // up\n",
    )
    .unwrap();
    fs::write(dir.join("central/mod.rs"), "pub mod state;\n").unwrap();
    fs::write(
        dir.join("central/state.rs"),
        "use crate::wire::{frame::Frame, self};\n",
    )
    .unwrap();
    let wrong = upward_imports(&dir);
    assert_eq!(
        wrong,
        ["wire::frame (floor 1) imports central::state (floor 4)"]
    );
    let found = circles(&graph(&dir));
    assert!(
        found.contains(&"central::state -> wire::frame -> central::state".to_string()),
        "{found:?}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
