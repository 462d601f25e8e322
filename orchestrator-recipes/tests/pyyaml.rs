//! The YAML loader reads the original tool's files as PyYAML (which the original tool
//! uses) reads them: `recipes/original/pyyaml.json` holds PyYAML's reading of every file
//! under `recipes/original/` (`scripts/pyyaml-corpus`), and this test compares the
//! loader's reading of each file with it. Where python3 has PyYAML, it also checks that
//! the committed readings are still what PyYAML reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use orchestrator_recipes::source::SourceText;
use orchestrator_recipes::yaml::{self, NodeKind};
use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/original")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

fn committed() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(corpus().join("pyyaml.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_loader_reads_every_original_layout_file_as_pyyaml_does() {
    let readings = committed();
    let mut files = Vec::new();
    yaml_files(&corpus(), &mut files);
    files.sort();
    assert!(files.len() >= 8, "a corpus of {} files", files.len());
    for file in &files {
        let name = file
            .strip_prefix(corpus())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let expected = readings.get(&name).unwrap_or_else(|| {
            panic!("{name} has no PyYAML reading: run scripts/pyyaml-corpus > recipes/original/pyyaml.json")
        });
        let text = std::fs::read_to_string(file).unwrap();
        let (documents, _) = yaml::load_lenient(&SourceText::new(&name, text))
            .unwrap_or_else(|p| panic!("{name}: {}", p.message));
        let ours: Vec<Value> = documents
            .iter()
            .filter(|d| d.kind != NodeKind::Null)
            .map(yaml::Node::to_json)
            .collect();
        assert_eq!(&Value::Array(ours), expected, "{name}");
    }
    assert_eq!(
        readings.len(),
        files.len(),
        "a reading for a file that is gone"
    );
}

#[test]
#[expect(
    clippy::print_stderr,
    reason = "says in the test's output that the live check was not possible"
)]
fn the_committed_readings_are_what_pyyaml_reads_now() {
    let has_pyyaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyyaml {
        eprintln!("python3 has no PyYAML here: checked against the committed readings only");
        return;
    }
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pyyaml-corpus"))
        .output()
        .expect("scripts/pyyaml-corpus runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        now,
        committed(),
        "recipes/original/pyyaml.json is stale: run scripts/pyyaml-corpus > recipes/original/pyyaml.json"
    );
}
