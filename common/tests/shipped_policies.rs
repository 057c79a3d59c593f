//! Every policy dockwarden ships or shows parses under the current rules (and the current
//! default profile): `config/allowlist.toml`, `k8s/allowlist.toml`, any other
//! `allowlist*.toml` in the repository, and every ```` ```toml ```` block in README.md and
//! docs/*.md. A block is a whole policy file; a fragment or a deliberately bad example is
//! written as ```` ```text ```` instead, so that no example in the docs can rot unseen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use common::policy::Policy;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("common/ sits in the workspace")
        .to_path_buf()
}

/// `allowlist*.toml` files under `dir`, skipping build output and hidden directories.
fn policy_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                policy_files(&path, out);
            }
        } else if name.starts_with("allowlist") && name.ends_with(".toml") {
            out.push(path);
        }
    }
}

/// The ```` ```toml ```` blocks of a Markdown file, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence == "```toml" => current = Some((i + 2, String::new())),
            Some(_) if fence.starts_with("```") => blocks.extend(current.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```toml block");
    blocks
}

#[test]
fn shipped_policy_files_parse() {
    let mut files = Vec::new();
    policy_files(&repo(), &mut files);
    for must in ["config/allowlist.toml", "k8s/allowlist.toml"] {
        assert!(files.contains(&repo().join(must)), "{must} not found");
    }
    for f in files {
        if let Err(e) = Policy::load(&f) {
            panic!("{e}");
        }
    }
}

#[test]
fn every_toml_block_in_the_docs_parses() {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.push(repo().join("README.md"));
    docs.sort();
    let mut seen = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (line, block) in toml_blocks(&text) {
            // The keys an example names are the reader's: a test key stands in for each,
            // beside a copy of the block, where the policy reads them.
            let dir = tempfile::tempdir().unwrap();
            for key in signed_by_paths(&block) {
                let at = dir.path().join(&key);
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                std::fs::copy(repo().join("common/testdata/provenance/key1.pub"), at).unwrap();
            }
            let origin = dir.path().join("allowlist.toml");
            if let Err(e) = Policy::parse(&block, &origin.display().to_string()) {
                panic!("{} (block at line {line}): {e}", doc.display());
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "found only {seen} toml blocks: is the fence detection broken?"
    );
}

/// The relative key paths a policy text's rules name in `signed_by`.
fn signed_by_paths(text: &str) -> Vec<String> {
    let Ok(v) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(rules) = v.get("allow").and_then(|a| a.as_array()) else {
        return Vec::new();
    };
    rules
        .iter()
        .filter_map(|r| r.get("signed_by")?.as_array().cloned())
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_string))
        .filter(|k| !k.starts_with('/'))
        .collect()
}

#[test]
fn the_block_finder_finds_blocks() {
    let md = "a\n```toml\nx = 1\n```\n```text\ny\n```\n  ```toml\nz = 2\n  ```\n";
    assert_eq!(
        toml_blocks(md),
        [(3, "x = 1\n".to_string()), (9, "z = 2\n".to_string())]
    );
}
