//! The shape of the code (DEVELOPERS.md, "Stages"): one pipeline, one folder
//! per stage, each stage using only itself, the shared contract (the raw
//! event, and what the recorder hands to the file), and the stage right
//! before it; files of one job, at most about 700 lines.

use std::path::{Path, PathBuf};

/// The stages, in pipeline order. `record` and `capture` meet only at the
/// shared contract: the recorder hands on through `event::Store`, which the
/// capture writer implements, so neither uses the other. `cli` is the glue
/// at the end: it may use every stage's public face (the compiler keeps it
/// off their insides).
const STAGES: [&str; 6] = ["record", "capture", "decode", "query", "render", "cli"];
/// The raw event, defined in bpf/ and mirrored once, and the recorder's
/// hand-off (src/event/): every stage may use it.
const SHARED: &str = "event";
const MAX_LINES: usize = 700;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules `text` names through `crate::`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn no_stage_uses_a_later_stage_or_skips_one() {
    let mut broken = Vec::new();
    for (i, stage) in STAGES.iter().enumerate() {
        let mut files = Vec::new();
        rust_files(&src().join(stage), &mut files);
        assert!(!files.is_empty(), "src/{stage}/ holds the {stage} stage");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for used in crate_paths(&text) {
                let ok = used == *stage
                    || used == SHARED
                    || (i > 1 && used == STAGES[i - 1])
                    || *stage == "cli" && STAGES.contains(&used.as_str());
                if !ok {
                    broken.push(format!("{}: crate::{used}", f.display()));
                }
            }
        }
    }
    let mut shared = Vec::new();
    rust_files(&src().join(SHARED), &mut shared);
    assert!(
        !shared.is_empty(),
        "src/{SHARED}/ holds the shared contract"
    );
    for f in shared {
        for used in crate_paths(&std::fs::read_to_string(&f).unwrap()) {
            if used != SHARED {
                broken.push(format!("{}: crate::{used}", f.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the pipeline:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_scan_sees_imports() {
    let text =
        "use crate::capture::{A, B};\nlet x = crate::event::counter::COUNT; // crate::render\n";
    assert_eq!(crate_paths(text), vec!["capture", "event"]);
}

#[test]
fn files_have_one_job_and_stages_say_what_they_own() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
    for stage in STAGES {
        let facade = std::fs::read_to_string(src().join(stage).join("mod.rs")).unwrap();
        assert!(
            facade.starts_with("//!"),
            "src/{stage}/mod.rs opens with what the stage owns"
        );
    }
}
