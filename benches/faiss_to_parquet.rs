//! Faiss (IndexFlatL2) → uncompressed Parquet, whole pipeline, bytes of index per second.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vmig_core::pipeline::{NoProgress, Pipeline, PipelineOptions};
use vmig_core::registry::{parse_sink, parse_source};
use vmig_core::BuildContext;
use vmig_sink_files as _;
use vmig_source_faiss as _;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rows = 65_536;
    let dim = 128;
    let index = dir.path().join("flat.faiss");
    let bytes = vmig_benches::write_flat_l2(&index, rows, dim, 42).expect("write index");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ctx = BuildContext::default();

    let mut group = c.benchmark_group("vmig_source_faiss::FaissSource→vmig_sink_files::FilesSink");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    for batch_rows in [1024usize, 8192, 65536] {
        group.bench_with_input(BenchmarkId::new("parquet_batch_rows", batch_rows), &batch_rows, |b, &batch_rows| {
            b.to_async(&rt).iter(|| async {
                let out = tempfile::tempdir().expect("out dir");
                let source = parse_source("faiss", serde_json::json!({ "path": index.to_string_lossy() }))
                    .expect("source config")
                    .build(&ctx)
                    .await
                    .expect("source");
                let sink = parse_sink(
                    "files",
                    serde_json::json!({ "path": out.path().to_string_lossy(), "format": "parquet", "compression": "none" }),
                )
                .expect("sink config")
                .build(&ctx)
                .await
                .expect("sink");
                let options = PipelineOptions {
                    batch_rows: std::num::NonZeroUsize::new(batch_rows).expect("non-zero"),
                    ..PipelineOptions::default()
                };
                let report = Pipeline::new(source, sink)
                    .with_options(options)
                    .run(Arc::new(NoProgress))
                    .await
                    .expect("run");
                assert_eq!(report.rows_written, rows as u64);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
