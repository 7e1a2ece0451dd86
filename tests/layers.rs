//! The structure stays as built: crates depend one way (ir <- optimizer <- engine <- cuda,
//! ir <- quant <- cuda and backend <- trtc, the backend knowing no engine crate), and inside `trtc-cuda` each layer
//! only uses the layers below it. Read from the sources, so a change that breaks either
//! fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `trtc-*` crates a manifest's `[dependencies]` names.
fn trtc_deps(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut deps = vec![];
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("trtc-") {
            deps.push(line.split(['.', ' ', '=']).next().unwrap().to_string());
        }
    }
    deps.sort();
    deps
}

#[test]
fn crates_depend_one_way() {
    let want: BTreeMap<&str, Vec<&str>> = [
        ("trtc-ir", vec![]),
        ("trtc-optimizer", vec!["trtc-ir"]),
        ("trtc-engine", vec!["trtc-ir"]),
        ("trtc-quant", vec!["trtc-ir"]),
        (
            "trtc-cuda",
            vec!["trtc-engine", "trtc-ir", "trtc-optimizer", "trtc-quant"],
        ),
        (
            "trtc-backend",
            vec!["trtc-engine", "trtc-ir", "trtc-optimizer", "trtc-quant"],
        ),
    ]
    .into_iter()
    .collect();
    for (krate, deps) in &want {
        let have = trtc_deps(&root().join("crates").join(krate).join("Cargo.toml"));
        assert_eq!(&have, deps, "{krate}'s trtc dependencies");
    }
    let bin = trtc_deps(&root().join("Cargo.toml"));
    for krate in want.keys() {
        assert!(bin.contains(&krate.to_string()), "trtc uses {krate}");
    }
}

/// The layers of `trtc-cuda`, bottom first: a file may use `crate::X` only for an `X` of its
/// own layer or one below.
const CUDA_LAYERS: [&[&str]; 8] = [
    &["error", "sys"],
    &["program"],
    &["passes"],
    &["exec"],
    &["tactics"],
    &["instance"],
    &["engine", "ops"],
    &["lib", "testing"],
];

fn layer_of(module: &str) -> usize {
    CUDA_LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` of trtc-cuda has no layer in tests/layers.rs"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn cuda_layers_only_look_down() {
    let src = root().join("crates/trtc-cuda/src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "{} files", files.len());
    let mut uses = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        let own = layer_of(&module);
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (at, _) in code.match_indices("crate::") {
            let target: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if target.is_empty() || target.chars().next().unwrap().is_uppercase() {
                continue; // `crate::Type` re-exported at the root: the top layer's own.
            }
            uses += 1;
            assert!(
                layer_of(&target) <= own,
                "{} (layer {module}) uses crate::{target}, a layer above it",
                rel.display()
            );
        }
    }
    assert!(uses > 30, "only {uses} crate:: paths found");
}
