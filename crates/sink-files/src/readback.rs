//! Reading Parquet output back, for `vmig verify`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::guard::Previous;
use crate::manifest::MANIFEST;
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
    /// The Parquet files that `dir`'s vmig `manifest.json` lists (and that still exist: a lost
    /// file shows as missing rows); their schema is read from the first one. Nothing else in
    /// `dir` is read, so other files, and runs still writing there, do not count.
    pub(crate) fn open(dir: PathBuf) -> Result<ParquetDir> {
        let display = dir.display().to_string();
        let manifest = dir.join(MANIFEST);
        let bytes = std::fs::read(&manifest).map_err(|e| {
            Error::Io(e).context(format!(
                "reading {}: {display} holds no vmig output to read back",
                manifest.display()
            ))
        })?;
        let previous = Previous::parse(&bytes, &display, MANIFEST)?;
        let mut files: Vec<PathBuf> = previous
            .files
            .iter()
            .filter(|f| f.ends_with(".parquet"))
            .map(|f| dir.join(f))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let first = files.first().ok_or_else(|| {
            Error::data(
                dir.display().to_string(),
                "holds no Parquet files listed in its manifest.json to read back",
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
