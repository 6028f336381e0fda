//! Reading Parquet output back, for `vmig verify`.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};

/// The `part-*.parquet` files of a local output directory, one partition each.
#[derive(Debug)]
pub(crate) struct ParquetDir {
    schema: SchemaRef,
    files: Vec<PathBuf>,
}

impl ParquetDir {
    /// Lists the part files of `dir`; their schema is read from the first one.
    pub(crate) fn open(dir: PathBuf) -> Result<ParquetDir> {
        let list = |d: &std::path::Path| -> Result<Vec<PathBuf>> {
            Ok(std::fs::read_dir(d)
                .map_err(|e| Error::Io(e).context(format!("listing {}", d.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect())
        };
        let is_part = |p: &PathBuf| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
        };
        // Part files at the top, and in one folder per named partition.
        let mut files = Vec::new();
        for entry in list(&dir)? {
            if entry.is_dir() {
                files.extend(list(&entry)?.into_iter().filter(is_part));
            } else if is_part(&entry) {
                files.push(entry);
            }
        }
        files.sort();
        let first = files.first().ok_or_else(|| {
            Error::data(
                dir.display().to_string(),
                "holds no part-*.parquet files to read back",
            )
        })?;
        let file = std::fs::File::open(first)?;
        let schema = Arc::clone(ParquetRecordBatchReaderBuilder::try_new(file)?.schema());
        Ok(ParquetDir { schema, files })
    }
}

#[async_trait]
impl Source for ParquetDir {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| PartitionInfo {
                id: PartitionId::new(i.to_string()),
                estimated_rows: None,
                description: f.display().to_string(),
                target_partition: None,
            })
            .collect())
    }

    fn open(
        &self,
        partition: &PartitionId,
        _resume_after: Option<&Position>,
        ctx: &SourceContext,
    ) -> Result<SourceStream> {
        let path = partition
            .0
            .parse::<usize>()
            .ok()
            .and_then(|i| self.files.get(i))
            .cloned()
            .ok_or_else(|| Error::config("files", format!("no part file {partition}")))?;
        let batch_rows = ctx.batch_rows.get();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<SourceBatch>>(2);
        // A blocking reader feeding a bounded channel: memory stays at a couple of batches.
        tokio::task::spawn_blocking(move || {
            let read = || -> Result<()> {
                let file = std::fs::File::open(&path)?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
                    .with_batch_size(batch_rows)
                    .build()?;
                for (i, batch) in reader.enumerate() {
                    let item = SourceBatch::new(batch?, Position::encode(&i)?);
                    if tx.blocking_send(Ok(item)).is_err() {
                        return Ok(());
                    }
                }
                Ok(())
            };
            if let Err(e) = read() {
                let _ = tx.blocking_send(Err(e.context(format!("reading {}", path.display()))));
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }
}
