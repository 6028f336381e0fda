//! `vmig plan` refuses what `vmig migrate` would refuse for the schema (issue #20): the sink's
//! own check (`Sink::check`) runs in both, before anything is written, and gives the same
//! text — for the `files` sink without any service, and for the `milvus2` sink against the real
//! Milvus 2.3.5 (`VMIG_MILVUS_URI`; skipped loudly without it, mandatory when `CI=true`), which
//! has no sparse vectors. Also: a run that fails in `prepare` or in `write` prints the real
//! error and no warning about cleaning up what was never created.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Int64Array, ListArray, MapArray,
    StructArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use common::{vmig_cmd, write_job};
use vmig::vector;
use vmig_testing::process::output_text as text;

/// Writes `dir/<name>.parquet` with an `id`, a 2-dimensional float vector `v` (NaN in row 1
/// when `nan`) and the columns `extra` names: `sp` (a sparse vector), `tags` (a list of
/// integers, a Milvus Array).
fn input(dir: &Path, name: &str, extra: &[&str], nan: bool) -> PathBuf {
    let rows = 3;
    let mut fields = vec![
        Field::new("id", DataType::Int64, false),
        vector::float_vector_field("v", 2),
    ];
    let v: Vec<f32> = (0..rows * 2)
        .map(|i| if nan && i == 2 { f32::NAN } else { i as f32 })
        .collect();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        Arc::new(FixedSizeListArray::new(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            2,
            Arc::new(Float32Array::from(v)),
            None,
        )),
    ];
    for e in extra {
        match *e {
            "sp" => {
                let DataType::Map(entries, sorted) = vector::sparse_float_vector_type() else {
                    unreachable!()
                };
                let DataType::Struct(parts) = entries.data_type().clone() else {
                    unreachable!()
                };
                let kv = StructArray::new(
                    parts,
                    vec![
                        Arc::new(UInt32Array::from(vec![1, 9, 4, 5, 6])),
                        Arc::new(Float32Array::from(vec![0.5, 1.0, 2.0, 0.25, 3.0])),
                    ],
                    None,
                );
                let map = MapArray::new(
                    entries,
                    OffsetBuffer::from_lengths([2, 0, 3]),
                    kv,
                    None,
                    sorted,
                );
                fields.push(vector::sparse_float_vector_field("sp"));
                columns.push(Arc::new(map));
            }
            "tags" => {
                let tags = ListArray::from_iter_primitive::<Int64Type, _, _>(
                    (0..rows as i64).map(|i| Some(vec![Some(i), Some(i + 1)])),
                );
                fields.push(Field::new("tags", tags.data_type().clone(), false));
                columns.push(Arc::new(tags));
            }
            other => panic!("unknown column {other}"),
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let path = dir.join(format!("{name}.parquet"));
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

fn source(path: &Path) -> String {
    format!(
        "[source]\ntype = \"files\"\npath = \"{}\"\n\n",
        path.display()
    )
}

/// The one `error: …` line of a failed command's standard error.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "{}", text(o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", text(o));
    errors[0].to_string()
}

/// `plan` and `migrate` (with and without a state store) fail with the same `error:` line,
/// which is `want`; the migrate runs print no warning about cleaning up.
fn plan_and_migrate_refuse(job: &Path, want: &str, run: &dyn Fn(&[&str]) -> Output) {
    let job = job.to_str().unwrap();
    let plan = run(&["plan", job]);
    assert_eq!(error_line(&plan), want, "plan");
    assert!(plan.stdout.is_empty(), "{}", text(&plan));
    let plan_json = run(&["plan", "--json", job]);
    assert!(!plan_json.status.success(), "{}", text(&plan_json));
    for extra in [&["--state", "none"][..], &[][..]] {
        let mut args = vec!["migrate", job];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(error_line(&o), want, "migrate {extra:?}");
        assert_no_cleanup_warning(&o);
    }
}

/// Nothing after the real error says that cleaning up failed or that something to remove was
/// missing: a sink that created nothing has nothing to remove.
fn assert_no_cleanup_warning(o: &Output) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    for bad in [
        "No such file",
        "not found",
        "failed too",
        "Aborting",
        "Discarding an open file failed",
        "Could not mark",
    ] {
        assert!(!stderr.contains(bad), "`{bad}` in:\n{}", text(o));
    }
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains(" WARN ") && !l.contains("The run failed; its progress is saved")),
        "{}",
        text(o)
    );
}

#[test]
fn files_sink_plan_refuses_with_the_text_migrate_gives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| vmig_cmd(args).current_dir(d).output().unwrap();
    let cases = [
        (
            "sp",
            "numpy",
            "error: the sink cannot write the planned schema: writing numpy files to {out}: unsupported input at field `sp`: a sparse_float_vector (Map(\"entries\": non-null Struct(\"keys\": non-null UInt32, \"values\": non-null Float32), unsorted), Milvus SparseFloatVector) cannot be written to numpy staging files: Milvus imports sparse vectors only from parquet or json files",
        ),
        (
            "tags",
            "numpy",
            "error: the sink cannot write the planned schema: writing numpy files to {out}: unsupported input at field `tags`: an array column (List(Int64)) cannot be written to numpy staging files: Milvus imports arrays only from parquet or json files",
        ),
    ];
    for (column, format, want) in cases {
        let data = input(d, column, &[column], false);
        let out = d.join(format!("out-{column}"));
        let job = write_job(
            d,
            column,
            &format!(
                "{}[sink]\ntype = \"files\"\npath = \"{}\"\nformat = \"{format}\"\n",
                source(&data),
                out.display()
            ),
        );
        let want = want.replace("{out}", &out.display().to_string());
        plan_and_migrate_refuse(&job, &want, &run);
        assert!(!out.exists(), "{column}: {} was created", out.display());
    }

    // The formats that hold sparse vectors: plan accepts, and says the sink was asked.
    let data = input(d, "sp-ok", &["sp"], false);
    for format in ["parquet", "json"] {
        let out = d.join(format!("out-ok-{format}"));
        let job = write_job(
            d,
            &format!("ok-{format}"),
            &format!(
                "{}[sink]\ntype = \"files\"\npath = \"{}\"\nformat = \"{format}\"\n",
                source(&data),
                out.display()
            ),
        );
        let o = run(&["plan", job.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains("\nsink check: the sink accepts the target schema\n"),
            "{stdout}"
        );
        let o = run(&["migrate", "--state", "none", job.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
    }
}

/// A write that fails (a NaN that JSON cannot hold) after the sink created its directory and
/// opened a file: the real error, what is left, and no warning about the clean-up.
#[test]
fn a_failed_write_prints_the_real_error_and_no_cleanup_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = input(d, "nan", &[], true);
    let out = d.join("out");
    let job = write_job(
        d,
        "nan",
        &format!(
            "{}[sink]\ntype = \"files\"\npath = \"{}\"\nformat = \"json\"\n",
            source(&data),
            out.display()
        ),
    );
    for extra in [&["--state", "none"][..], &[][..]] {
        let mut args = vec!["migrate", job.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = vmig_cmd(&args).current_dir(d).output().unwrap();
        let line = error_line(&o);
        assert!(
            line.starts_with("error: writing to the sink: invalid data at ")
                && line.ends_with(
                    ", field `v`, row 1: dimension 0 is NaN; JSON cannot hold NaN or infinity (Milvus rejects them too)"
                ),
            "{line}"
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(&format!(
                "Left in the target: {} was created empty by this run and removed.",
                out.display()
            )),
            "{}",
            text(&o)
        );
        assert_no_cleanup_warning(&o);
        assert!(!out.exists());
    }
}

/// Milvus 2.3.5 has no sparse vectors: `plan` says so as `migrate` does, for inserts and bulk
/// imports, and no collection is created. A NumPy bulk import of an Array field is refused the
/// same way.
#[test]
fn milvus_2_3_plan_refuses_sparse_vectors_with_the_text_migrate_gives() {
    let Some(m) = vmig_testing::service::milvus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let mut c = common::vmig_milvus_cmd(args, &m);
        c.current_dir(d);
        c.output().unwrap()
    };
    let stage = d.join("stage");
    let sink = |collection: &str, mode: &str| {
        format!(
            "[sink]\ntype = \"milvus2\"\nuri = \"{}\"\nuser = \"{}\"\npassword = \"${{VMIG_TEST_MILVUS_PASSWORD}}\"\ncollection = \"{collection}\"\n{mode}",
            m.uri, m.user
        )
    };
    let sparse = input(d, "sp", &["sp"], false);
    let no_sparse = "error: the sink cannot write the planned schema: unsupported input at field `sp`: Milvus v2.3.5-lite has no SparseFloatVector type (it came with Milvus 2.4): migrate into Milvus 2.4 or later, or leave the field out (a `drop` transformer)";
    let collection = vmig_testing::service::unique("w20sp");
    for mode in [
        "mode = \"insert\"\n".to_string(),
        format!(
            "mode = \"bulk\"\nstage = \"{}\"\nbulk_format = \"parquet\"\n",
            stage.display()
        ),
        format!(
            "mode = \"bulk\"\nstage = \"{}\"\nbulk_format = \"json\"\n",
            stage.display()
        ),
    ] {
        let job = write_job(
            d,
            "sparse",
            &format!("{}{}", source(&sparse), sink(&collection, &mode)),
        );
        plan_and_migrate_refuse(&job, no_sparse, &run);
    }
    let tags = input(d, "tags", &["tags"], false);
    let job = write_job(
        d,
        "tags",
        &format!(
            "{}{}",
            source(&tags),
            sink(
                &collection,
                &format!(
                    "mode = \"bulk\"\nstage = \"{}\"\nbulk_format = \"numpy\"\n",
                    stage.display()
                )
            )
        ),
    );
    plan_and_migrate_refuse(
        &job,
        "error: the sink cannot write the planned schema: unsupported input at field `tags`: an array column (List(Int64)) cannot be written to numpy staging files: Milvus imports arrays only from parquet or json files",
        &run,
    );
    // Nothing was created: a run of a schema it takes finds no collection in its way.
    let ok = input(d, "ok", &[], false);
    let job = write_job(
        d,
        "ok",
        &format!(
            "{}{}",
            source(&ok),
            sink(&collection, "mode = \"insert\"\n")
        ),
    );
    let o = run(&["plan", job.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("\nsink check: the sink accepts the target schema\n"),
        "{}",
        text(&o)
    );
    let o = run(&["migrate", "--state", "none", job.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    if m.python.is_some() {
        m.pymilvus(&format!("utility.drop_collection('{collection}')"));
    }
}
