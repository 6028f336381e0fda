//! `vmig` on milvus-migration config files (`migration.yaml`): run end to end where no server is
//! needed, and `vmig convert`'s output.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vmig_testing::process::output_text as text;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sample.faiss")
}

fn vmig_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmig"))
        .args(args)
        .current_dir(dir)
        .env_remove("VMIG_LOG")
        .output()
        .unwrap()
}

/// README_FAISS.md's example with `target.mode: local` (milvus-migration's `dump` to a local
/// directory) and a relative `faissFile`, resolved against the working directory as
/// milvus-migration resolves it.
fn faiss_local(dir: &Path) -> PathBuf {
    std::fs::copy(sample(), dir.join("faiss.index")).unwrap();
    let path = dir.join("migration.yaml");
    std::fs::write(
        &path,
        "dumper:
  worker:
    limit: 20
    workMode: faiss
    reader:
      bufferSize: 1024 # unit is KB
    writer:
      bufferSize: 1024 # unit is KB

loader:
  worker:
    limit: 20

source:
  mode: local   # local or remote
  local:
    faissFile: ./faiss.index

target:
  mode: local
  local:
    outputDir: output/

  milvus2x: # milvus2x connect info
    endpoint: xxxxxx:19530
    username: xxxxx
    password: n0t-shown-pw

  create:           # create collection info:
    collection:
      name: test
      shardsNum: 2
      dim: 64
      metricType: L2
",
    )
    .unwrap();
    path
}

#[test]
fn faiss_local_mode_runs_end_to_end_into_numpy_files() {
    let dir = tempfile::tempdir().unwrap();
    faiss_local(dir.path());
    let out = vmig_in(
        dir.path(),
        &["migrate", "migration.yaml", "--json", "--progress", "none"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows_read"], 2000, "{summary}");
    assert_eq!(summary["rows_written"], 2000, "{summary}");
    let staged = dir.path().join("output/migration");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&staged).unwrap() {
        let entry = entry.unwrap().path();
        if entry.is_dir() {
            for f in std::fs::read_dir(&entry).unwrap() {
                names.push(f.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    assert!(names.contains(&"id.npy".to_string()), "{names:?}");
    assert!(names.contains(&"data.npy".to_string()), "{names:?}");
    // The job is known to the state store under the file's name.
    let status = vmig_in(dir.path(), &["status", "migration.yaml", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
}

#[test]
fn convert_prints_the_job_with_notes_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    faiss_local(dir.path());
    let out = vmig_in(dir.path(), &["convert", "migration.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(!printed.contains("n0t-shown-pw"), "{printed}");
    assert!(printed.contains("type = \"files\""), "{printed}");
    assert!(printed.contains("format = \"numpy\""), "{printed}");
    assert!(
        printed.contains("# target.milvus2x: target.mode is local: nothing is loaded into Milvus"),
        "{printed}"
    );
    let yaml = vmig_in(
        dir.path(),
        &["convert", "migration.yaml", "--format", "yaml"],
    );
    assert!(yaml.status.success(), "{}", text(&yaml));
    assert!(String::from_utf8(yaml.stdout)
        .unwrap()
        .contains("type: rename"));
}

#[test]
fn a_typo_is_an_error_naming_the_key_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = faiss_local(dir.path());
    let text_in = std::fs::read_to_string(&path)
        .unwrap()
        .replace("shardsNum: 2", "shardsNums: 2");
    std::fs::write(&path, text_in).unwrap();
    let out = vmig_in(dir.path(), &["plan", "migration.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid `migration.yaml` configuration: migration.yaml: unknown key `target.create.collection.shardsNums` (did you mean `shardsNum`?)"),
        "{stderr}"
    );
}
