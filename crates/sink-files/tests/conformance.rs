//! The conformance kit on the `files` sink: `check_sink` (one run, then an abort) and
//! `check_sink_resume` (runs stopped at every cut point — killed, suspended, several times in a
//! row — and resumed from the record of their last flush) for local Parquet, JSON and NumPy
//! output and for Parquet on S3 (when `VMIG_S3_ENDPOINT` is set). Local Parquet is read back
//! through the sink's own `open_target` (what `vmig verify` reads); the other outputs by the
//! readers below, which go through `manifest.json` like Milvus bulk import does and also fail
//! when the target holds anything the manifest does not list (a leftover of an interrupted run).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use futures::FutureExt;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};
use vmig_core::registry::{parse_sink, BuildContext};
use vmig_core::{Error, Result};
use vmig_sink_files as _;
use vmig_testing::conformance::{
    check_sink, check_sink_resume, read_target, MakeSink, ReadBack, ResumeCase, ResumeReport,
    SinkCase,
};
use vmig_testing::gen::sample_batch;

const DIM: usize = 16;

/// Batches without nulls (NumPy has none), over several files.
fn batches() -> Vec<RecordBatch> {
    (0..4)
        .map(|i| {
            let b = sample_batch(3, i * 250, 250, DIM);
            // `title` is null on every 7th row: NumPy cannot hold that, so drop the column.
            b.project(&[0, 1, 3, 4]).unwrap()
        })
        .collect()
}

fn schema() -> SchemaRef {
    batches()[0].schema()
}

async fn check(config: Value, abort_config: Value) {
    let ctx = BuildContext::default();
    let config = parse_sink("files", config).unwrap();
    let abort_config = parse_sink("files", abort_config).unwrap();
    check_sink(SinkCase {
        config: config.as_ref(),
        abort_config: abort_config.as_ref(),
        ctx: &ctx,
        batches: batches(),
        key: "id",
    })
    .await;
}

#[tokio::test]
async fn local_parquet_keeps_the_sink_contract() {
    let dir = tempfile::tempdir().unwrap();
    check(
        json!({ "path": dir.path().join("out"), "format": "parquet", "max_file_size": "200KB" }),
        json!({ "path": dir.path().join("aborted"), "format": "parquet" }),
    )
    .await;
}

// ------------------------------------------------------------------ resuming

fn failed(what: impl Into<String>) -> Error {
    Error::External(what.into().into())
}

/// The files `manifest` lists (relative to the target), each once.
fn listed_files(manifest: &Value) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let units = manifest["files"]
        .as_array()
        .ok_or_else(|| failed("manifest.json lists no files"))?;
    for unit in units {
        for f in unit["files"].as_array().into_iter().flatten() {
            let f = f
                .as_str()
                .ok_or_else(|| failed("a file name is no string"))?;
            if files.iter().any(|g| g == f) {
                return Err(failed(format!("manifest.json lists {f} twice")));
            }
            files.push(f.to_string());
        }
    }
    let total: u64 = units.iter().filter_map(|u| u["rows"].as_u64()).sum();
    if manifest["total_rows"].as_u64() != Some(total) {
        return Err(failed(format!(
            "manifest.json says total_rows = {}, its units hold {total}",
            manifest["total_rows"]
        )));
    }
    Ok(files)
}

/// Every file below `dir`, relative, `/`-separated.
fn files_below(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Fails when `present` holds anything but `manifest.json` and the `listed` files.
fn only_output(present: &[String], listed: &[String]) -> Result<()> {
    let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    let extra: Vec<&String> = present
        .iter()
        .filter(|f| *f != "manifest.json" && !listed.contains(f.as_str()))
        .collect();
    let absent: Vec<&&str> = listed
        .iter()
        .filter(|f| !present.iter().any(|p| p == **f))
        .collect();
    if extra.is_empty() && absent.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "the target holds {extra:?} besides its output, and lacks {absent:?} that manifest.json lists"
        )))
    }
}

fn read_parquet(data: bytes::Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?.build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Rows of a row-based JSON unit (`{"rows": [...]}`), decoded with `schema`.
fn read_json(data: &[u8], schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let v: Value = serde_json::from_slice(data).map_err(|e| failed(e.to_string()))?;
    let rows = v["rows"]
        .as_array()
        .ok_or_else(|| failed("no `rows` array"))?;
    let lines: Vec<String> = rows.iter().map(Value::to_string).collect();
    let reader = arrow::json::ReaderBuilder::new(Arc::clone(schema))
        .build(std::io::Cursor::new(lines.join("\n")))?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Rows of a NumPy unit folder (one `<field>.npy` per field of `schema`).
fn read_npy(dir: &Path, schema: &SchemaRef) -> Result<RecordBatch> {
    let open = |name: &str| -> Result<npyz::NpyFile<std::fs::File>> {
        let file = std::fs::File::open(dir.join(format!("{name}.npy")))?;
        npyz::NpyFile::new(file).map_err(Error::from)
    };
    let bad = |e: std::io::Error| Error::from(e);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            open("id")?.into_vec::<i64>().map_err(bad)?,
        )),
        Arc::new(vmig_core::vector::float_vector_array(
            Float32Array::from(open("vector")?.into_vec::<f32>().map_err(bad)?),
            DIM,
        )?),
        Arc::new(Float64Array::from(
            open("score")?.into_vec::<f64>().map_err(bad)?,
        )),
        Arc::new(BooleanArray::from(
            open("flag")?.into_vec::<bool>().map_err(bad)?,
        )),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Reads the local output in `dir` as its manifest lists it; fails on anything else there.
fn read_local(dir: &Path, format: &str, schema: &SchemaRef) -> Result<RecordBatch> {
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json"))?)
        .map_err(|e| failed(e.to_string()))?;
    let files = listed_files(&manifest)?;
    only_output(&files_below(dir), &files)?;
    let mut batches = Vec::new();
    for unit in manifest["files"].as_array().into_iter().flatten() {
        let path = dir.join(unit["path"].as_str().unwrap_or_default());
        match format {
            "parquet" => batches.extend(read_parquet(std::fs::read(&path)?.into())?),
            "json" => batches.extend(read_json(&std::fs::read(&path)?, schema)?),
            _ => batches.push(read_npy(&path, schema)?),
        }
    }
    concat(schema, &batches)
}

/// All rows of `batches` in the schema they were read with (Parquet reads vectors back as
/// lists; the kit compares values after casting).
fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let read = batches
        .first()
        .map_or_else(|| Arc::clone(schema), RecordBatch::schema);
    Ok(arrow::compute::concat_batches(&read, batches)?)
}

/// `batch` in `id` order.
fn by_id(batch: &RecordBatch) -> Result<RecordBatch> {
    let order = arrow::compute::sort_to_indices(batch.column(0), None, None)?;
    Ok(arrow::compute::take_record_batch(batch, &order)?)
}

/// Target partitions of the four batches: the second and fourth go to folder `p1`, so the
/// numbering continues per folder.
fn partitions() -> Vec<Option<String>> {
    vec![None, Some("p1".into()), None, Some("p1".into())]
}

/// The kit's resume trials of this file's rows and partitions (15 trials), keyed by `id`.
async fn resume_trials<'a>(make: &'a MakeSink<'a>, read_back: &'a ReadBack<'a>) -> ResumeReport {
    let report = check_sink_resume(ResumeCase {
        make,
        read_back,
        batches: batches(),
        partitions: partitions(),
        key: "id",
    })
    .await;
    assert_eq!(report.trials.len(), 15);
    report
}

async fn check_local_resume(format: &'static str, max_file_size: &'static str) -> ResumeReport {
    let tmp = tempfile::tempdir().unwrap();
    let base: PathBuf = tmp.path().to_path_buf();
    let target = move |t: usize| base.join(format!("trial-{t}"));
    let config = {
        let target = target.clone();
        move |t: usize| {
            parse_sink(
                "files",
                json!({ "path": target(t), "format": format, "max_file_size": max_file_size }),
            )
            .unwrap()
        }
    };
    let make_config = config.clone();
    let make = move |t: usize| {
        let config = make_config(t);
        async move { config.build(&BuildContext::default()).await }.boxed()
    };
    let read_back = move |t: usize| {
        let (config, dir) = (config(t), target(t));
        async move {
            let schema = schema();
            let rows = read_local(&dir, format, &schema)?;
            if format == "parquet" {
                // What `vmig verify` reads must agree.
                let verified = read_target(config.as_ref(), &BuildContext::default(), &schema)
                    .await?
                    .ok_or_else(|| failed("open_target gave no reader"))?;
                let (verified, rows) = (by_id(&verified)?, by_id(&rows)?);
                let same = verified.num_rows() == rows.num_rows()
                    && (0..rows.num_columns()).all(|i| {
                        vmig_testing::compare::same_values(verified.column(i), rows.column(i))
                    });
                if !same {
                    return Err(failed(
                        "open_target reads other rows than the manifest lists",
                    ));
                }
            }
            Ok(rows)
        }
        .boxed()
    };
    let report = resume_trials(&make, &read_back).await;
    assert_eq!(report.resumes, 17);
    report
}

#[tokio::test]
async fn local_parquet_resumes_exactly() {
    check_local_resume("parquet", "12KB").await;
}

#[tokio::test]
async fn local_json_resumes_exactly() {
    check_local_resume("json", "24KB").await;
}

#[tokio::test]
async fn local_numpy_resumes_exactly() {
    check_local_resume("numpy", "8KB").await;
}

#[tokio::test]
async fn s3_parquet_resumes_exactly() {
    let Some(s3) = vmig_testing::service::S3::from_env() else {
        return;
    };
    let prefix = vmig_testing::service::unique("vmig-files-resume-kit");
    let url = {
        let (bucket, prefix) = (s3.bucket.clone(), prefix.clone());
        move |t: usize| format!("s3://{bucket}/{prefix}/trial-{t}/")
    };
    let storage = s3.storage_options();
    let config = {
        let (url, storage) = (url.clone(), storage.clone());
        move |t: usize| {
            parse_sink(
                "files",
                json!({ "path": url(t), "format": "parquet", "max_file_size": "12KB", "storage": storage }),
            )
            .unwrap()
        }
    };
    let make = move |t: usize| {
        let config = config(t);
        async move { config.build(&BuildContext::default()).await }.boxed()
    };
    let bucket = vmig_core::store::resolve(&format!("s3://{}/", s3.bucket), &storage)
        .unwrap()
        .store;
    let read_store = Arc::clone(&bucket);
    let read_prefix = prefix.clone();
    let read_back = move |t: usize| {
        let (store, root) = (Arc::clone(&read_store), format!("{read_prefix}/trial-{t}"));
        async move {
            let key = |rel: &str| object_store::path::Path::from(format!("{root}/{rel}"));
            let get = |rel: String| {
                let store = Arc::clone(&store);
                let key = key(&rel);
                async move { Ok::<_, Error>(store.get(&key).await?.bytes().await?) }
            };
            let manifest: Value = serde_json::from_slice(&get("manifest.json".into()).await?)
                .map_err(|e| failed(e.to_string()))?;
            let files = listed_files(&manifest)?;
            let listed: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
                store.list(Some(&object_store::path::Path::from(root.as_str()))),
            )
            .await?;
            let present: Vec<String> = listed
                .iter()
                .map(|o| o.location.as_ref()[root.len() + 1..].to_string())
                .collect();
            only_output(&present, &files)?;
            let mut batches = Vec::new();
            for f in files {
                batches.extend(read_parquet(get(f).await?)?);
            }
            concat(&schema(), &batches)
        }
        .boxed()
    };
    resume_trials(&make, &read_back).await;

    let root = object_store::path::Path::from(prefix.as_str());
    let objects: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(bucket.list(Some(&root)))
        .await
        .unwrap();
    for o in objects {
        bucket.delete(&o.location).await.unwrap();
    }
}
