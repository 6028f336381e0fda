//! The `milvus1` source with its meta in a real MariaDB (`scripts/mariadb start`) and with the
//! data directory served by a real S3 server (`scripts/s3 start`). Rows are compared
//! bit-exactly with what the generator wrote minus the deleted offsets. Each test skips loudly
//! when its service is missing, and fails under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{build, expected, read_all, unique};
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;
use vmig_core::vector::META_METRIC;
use vmig_source_milvus1 as _;
use vmig_testing::milvus1::standard;
use vmig_testing::service::{mariadb_url, S3};

#[tokio::test]
async fn mysql_meta_in_mariadb() {
    let Some(base) = mariadb_url() else { return };
    let db = vmig_testing::database::TempDatabase::create(&base, "vmig_milvus1").await;
    let url = db.url.clone();
    let g = standard(31);
    let dir = tempfile::tempdir().unwrap();
    g.write_dir(dir.path()).await.unwrap();
    // The SQLite meta must not be what is read: remove it.
    std::fs::remove_file(dir.path().join("db/meta.sqlite")).unwrap();
    g.load_mysql(&url).await.unwrap();
    let check = async {
        for (name, metric) in [("books", "L2"), ("codes", "HAMMING")] {
            let source = build(json!({
                "path": dir.path().display().to_string(), "meta": url, "collections": [name]
            }))
            .await?;
            assert_eq!(source.schema().metadata()[META_METRIC], metric);
            let got = read_all(source.as_ref(), 16).await?;
            assert_eq!(got, expected(&g, name), "{name}");
        }
        // `mariadb://` is accepted too; a wrong password fails naming the redacted URL.
        let maria = url.replacen("mysql://", "mariadb://", 1);
        let source = build(json!({
            "path": dir.path().display().to_string(), "meta": maria, "collections": ["books"]
        }))
        .await?;
        assert_eq!(source.partitions().await?.len(), 6);
        let bad = url.replacen(":vmigpass@", ":wrongpass@", 1);
        let err = build(json!({ "path": dir.path().display().to_string(), "meta": bad }))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mysql://***@") && !err.contains("wrongpass"),
            "{err}"
        );
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    db.drop_now().await;
    check.unwrap();
}

async fn upload(store: &Arc<dyn ObjectStore>, local: &Path, prefix: &str) {
    use futures::StreamExt;
    let mut files = Vec::new();
    let mut stack = vec![local.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    futures::stream::iter(files)
        .for_each_concurrent(16, |p| async move {
            let rel = p
                .strip_prefix(local)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let key = object_store::path::Path::from(format!("{prefix}/{rel}"));
            store
                .put(&key, std::fs::read(&p).unwrap().into())
                .await
                .unwrap();
        })
        .await;
}

/// Deletes every object under `root` (best effort: a test's own prefix).
async fn remove_all(root: &vmig_core::store::StoreLocation) {
    let all: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(root.store.list(Some(&root.path)))
            .await
            .unwrap_or_default();
    for o in all {
        let _ = root.store.delete(&o.location).await;
    }
}

#[tokio::test]
async fn data_directory_on_s3() {
    let Some(s3) = S3::from_env() else { return };
    let g = standard(41);
    let dir = tempfile::tempdir().unwrap();
    g.write_dir(dir.path()).await.unwrap();
    let prefix = unique("milvus1");
    let storage = s3.storage_options();
    let root =
        vmig_core::store::resolve(&format!("s3://{}/{prefix}", s3.bucket), &storage).unwrap();
    upload(&root.store, dir.path(), &prefix).await;
    let check = async {
        for name in ["books", "codes"] {
            let source = build(json!({
                "path": format!("s3://{}/{prefix}", s3.bucket),
                "storage": storage,
                "collections": [name],
            }))
            .await?;
            let got = read_all(source.as_ref(), 9).await?;
            assert_eq!(got, expected(&g, name), "{name}");
        }
        // A segment the meta lists but the bucket lacks: found by `build`'s up-front check,
        // before anything is read.
        let seg = g.expected("books");
        assert!(!seg.is_empty());
        let victim = root.path.clone().join("db").join("tables").join("books");
        let listed: Vec<_> =
            futures::TryStreamExt::try_collect::<Vec<_>>(root.store.list(Some(&victim)))
                .await
                .unwrap();
        let rv = listed
            .iter()
            .find(|o| o.location.as_ref().ends_with(".rv"))
            .unwrap();
        root.store.delete(&rv.location).await.unwrap();
        let err = build(json!({
            "path": format!("s3://{}/{prefix}", s3.bucket),
            "storage": storage,
            "collections": ["books"],
        }))
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no `*.rv` file") && err.contains("s3://"),
            "{err}"
        );
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    remove_all(&root).await;
    check.unwrap();
}

#[tokio::test]
async fn many_segments_on_s3_are_all_checked_before_reading() {
    use vmig_testing::milvus1::{FileType, Metric, Milvus1Gen};
    let Some(s3) = S3::from_env() else { return };
    let mut g = Milvus1Gen::new(43);
    let c = g.collection("many", 4, Metric::L2);
    let segments: Vec<_> = (0..250)
        .map(|i| g.segment(c, 2, if i % 7 == 0 { &[1] } else { &[] }, FileType::Raw))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    g.write_dir(dir.path()).await.unwrap();
    let prefix = unique("milvus1_many");
    let storage = s3.storage_options();
    let url = format!("s3://{}/{prefix}", s3.bucket);
    let root = vmig_core::store::resolve(&url, &storage).unwrap();
    upload(&root.store, dir.path(), &prefix).await;
    let check = async {
        let config = json!({ "path": url, "storage": storage });
        let started = std::time::Instant::now();
        let source = build(config.clone()).await?;
        eprintln!(
            "checked {} segments on S3 in {:?}",
            segments.len(),
            started.elapsed()
        );
        assert_eq!(read_all(source.as_ref(), 64).await?, expected(&g, "many"));
        // The last segment's `.uid` loses a row: `build` reports it.
        let last = segments.last().unwrap();
        let uid = root
            .path
            .clone()
            .join("db")
            .join("tables")
            .join("many")
            .join(last.as_str())
            .join(format!("{last}.uid"));
        let mut bytes = 8u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&7i64.to_le_bytes());
        root.store.put(&uid, bytes.into()).await.unwrap();
        let err = build(config).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("{last}.uid")) && err.contains("holds 1 ids but"),
            "{err}"
        );
        Ok::<_, vmig_core::Error>(())
    }
    .await;
    remove_all(&root).await;
    check.unwrap();
}
