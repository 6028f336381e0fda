//! Splitting a stream of batches across staging files of at most `max_file_size` bytes.
//!
//! [`RotatingWriter`] is the one place where a sink's rows become a sequence of staging files:
//! it keeps one open file per target partition, fills it with
//! [`StagingWriter::write_within`] as far as the size limit allows, finishes it and starts the
//! next one where the rest of the batch goes. A row is never split across files; a row that
//! does not fit even in an empty file is an error. Where files go and what happens to a
//! finished one (renamed into place, uploaded, imported, listed in a manifest) is the caller's:
//! a [`FileNamer`] names each new file, and [`RotatingWriter::take_finished`] hands over the
//! finished ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use vmig_core::{Error, Result, ResultExt};

use super::{FinishedFile, StagingFormat, StagingOptions, StagingWriter};

/// Names the next file of a partition: called with the partition (`None`: rows without one)
/// and the file's number within that partition (0, 1, …); returns the path to create (a file,
/// or for NumPy a directory). It may create parent directories.
pub type FileNamer = Box<dyn FnMut(Option<&str>, u32) -> Result<PathBuf> + Send + Sync>;

/// A staging file that a [`RotatingWriter`] finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedFile {
    /// The partition its rows belong to.
    pub partition: Option<String>,
    /// Its number within the partition, as passed to the [`FileNamer`].
    pub index: u32,
    /// What was written.
    pub file: FinishedFile,
}

/// Writes batches into staging files of one format, starting a new file whenever the open one
/// would exceed `max_file_size` (see the module docs). Blocking: run it off an async runtime.
pub struct RotatingWriter {
    /// The plugin whose `max_file_size` is meant in errors.
    owner: String,
    format: StagingFormat,
    schema: SchemaRef,
    options: StagingOptions,
    max_file_size: u64,
    namer: FileNamer,
    /// The open file of each partition, with its number.
    open: BTreeMap<Option<String>, (StagingWriter, u32)>,
    /// The number of the next file of each partition.
    next_index: BTreeMap<Option<String>, u32>,
    /// Finished and not yet taken by [`RotatingWriter::take_finished`].
    finished: Vec<RotatedFile>,
}

impl fmt::Debug for RotatingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingWriter")
            .field("owner", &self.owner)
            .field("format", &self.format)
            .field("max_file_size", &self.max_file_size)
            .field("open", &self.open)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl RotatingWriter {
    /// A writer of `format` files of `schema`, each at most `max_file_size` bytes (for NumPy:
    /// the sum of one directory's `.npy` files), named by `namer`. `owner` is the plugin whose
    /// `max_file_size` option an error names. Does no I/O.
    pub fn new(
        owner: impl Into<String>,
        format: StagingFormat,
        schema: SchemaRef,
        options: StagingOptions,
        max_file_size: u64,
        namer: impl FnMut(Option<&str>, u32) -> Result<PathBuf> + Send + Sync + 'static,
    ) -> RotatingWriter {
        RotatingWriter {
            owner: owner.into(),
            format,
            schema,
            options,
            max_file_size,
            namer: Box::new(namer),
            open: BTreeMap::new(),
            next_index: BTreeMap::new(),
            finished: Vec::new(),
        }
    }

    /// The format written.
    pub fn format(&self) -> StagingFormat {
        self.format
    }

    /// Appends `batch` to the open file of `partition`, finishing files and starting new ones
    /// so that none exceeds `max_file_size`. Finished files wait for
    /// [`RotatingWriter::take_finished`], also when this fails.
    ///
    /// # Errors
    /// [`Error::Config`] of the owner when a single row does not fit in an empty file (that
    /// file is removed); the errors of [`StagingWriter`] and of the namer.
    pub fn write(&mut self, batch: &RecordBatch, partition: Option<&str>) -> Result<()> {
        let key = partition.map(str::to_string);
        let n = batch.num_rows();
        let mut offset = 0;
        while offset < n {
            let (mut writer, index) = match self.open.remove(&key) {
                Some(open) => open,
                None => self.start(&key)?,
            };
            let rest = batch.slice(offset, n - offset);
            let taken = match writer.write_within(&rest, self.max_file_size) {
                Ok(taken) => taken,
                Err(e) => {
                    // Left open, so that `discard_open` removes it.
                    self.open.insert(key, (writer, index));
                    return Err(e);
                }
            };
            offset += taken;
            if offset == n {
                self.open.insert(key, (writer, index));
                break;
            }
            if writer.rows() == 0 {
                writer.discard()?;
                return Err(Error::config(
                    self.owner.as_str(),
                    format!(
                        "a single row (row {offset} of a batch) does not fit in a {} file of max_file_size = {} bytes; raise `max_file_size`",
                        self.format, self.max_file_size
                    ),
                ));
            }
            self.finish_one(key.clone(), writer, index)?;
        }
        Ok(())
    }

    /// Finishes every open file, in partition order (rows without a partition first).
    ///
    /// # Errors
    /// I/O errors; files not finished yet stay open.
    pub fn finish_all(&mut self) -> Result<()> {
        while let Some((partition, (writer, index))) = self.open.pop_first() {
            self.finish_one(partition, writer, index)?;
        }
        Ok(())
    }

    /// The files finished since the last call, in the order they were finished.
    pub fn take_finished(&mut self) -> Vec<RotatedFile> {
        std::mem::take(&mut self.finished)
    }

    /// Removes every open file (finished ones are the caller's).
    ///
    /// # Errors
    /// The first file that could not be removed (the others are still tried).
    pub fn discard_open(&mut self) -> Result<()> {
        let mut first = Ok(());
        for (_, (writer, _)) in std::mem::take(&mut self.open) {
            if let Err(e) = writer.discard() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    fn start(&mut self, partition: &Option<String>) -> Result<(StagingWriter, u32)> {
        let next = self.next_index.entry(partition.clone()).or_insert(0);
        let index = *next;
        *next += 1;
        let path = (self.namer)(partition.as_deref(), index)?;
        let writer = StagingWriter::create(self.format, &path, &self.schema, &self.options)?;
        Ok((writer, index))
    }

    fn finish_one(
        &mut self,
        partition: Option<String>,
        writer: StagingWriter,
        index: u32,
    ) -> Result<()> {
        let path = writer.path().to_path_buf();
        let file = writer
            .finish()
            .context_with(|| format!("finishing {}", path.display()))?;
        self.finished.push(RotatedFile {
            partition,
            index,
            file,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(first: i64, rows: usize, text: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let ids = Int64Array::from_iter_values(first..first + rows as i64);
        let texts = StringArray::from_iter_values((0..rows).map(|_| "x".repeat(text)));
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(texts)]).unwrap()
    }

    fn writer(dir: &Path, format: StagingFormat, max: u64) -> RotatingWriter {
        let dir = dir.to_path_buf();
        RotatingWriter::new(
            "test",
            format,
            batch(0, 0, 0).schema(),
            StagingOptions::default(),
            max,
            move |partition, index| {
                let dir = match partition {
                    Some(p) => dir.join(p),
                    None => dir.clone(),
                };
                std::fs::create_dir_all(&dir)?;
                Ok(dir.join(format!("f{index}")))
            },
        )
    }

    fn ids_of_json(path: &Path) -> Vec<i64> {
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let rows = file["rows"].as_array().unwrap();
        rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
    }

    #[test]
    fn splits_rows_across_files_under_the_limit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let max = 2_000;
        let mut w = writer(dir.path(), StagingFormat::Json, max);
        for i in 0..5 {
            w.write(&batch(i * 40, 40, 20), None).unwrap();
            w.write(&batch(1000 + i * 3, 3, 5), Some("p")).unwrap();
        }
        w.finish_all().unwrap();
        let files = w.take_finished();
        let top: Vec<&RotatedFile> = files.iter().filter(|f| f.partition.is_none()).collect();
        assert!(top.len() > 2, "{files:?}");
        let mut ids = Vec::new();
        for (i, f) in top.iter().enumerate() {
            assert_eq!(f.index, i as u32);
            assert_eq!(f.file.path, dir.path().join(format!("f{i}")));
            assert!(f.file.bytes <= max, "{f:?}");
            assert_eq!(f.file.bytes, std::fs::metadata(&f.file.path).unwrap().len());
            let got = ids_of_json(&f.file.path);
            assert_eq!(got.len() as u64, f.file.rows);
            ids.extend(got);
        }
        assert_eq!(ids, (0..200).collect::<Vec<_>>());
        let p: Vec<i64> = files
            .iter()
            .filter(|f| f.partition.as_deref() == Some("p"))
            .flat_map(|f| ids_of_json(&f.file.path))
            .collect();
        let want: Vec<i64> = (0..5).flat_map(|i| 1000 + i * 3..1003 + i * 3).collect();
        assert_eq!(p, want);
        assert!(dir.path().join("p/f0").is_file());
    }

    #[test]
    fn a_row_larger_than_the_limit_is_refused_and_its_file_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), StagingFormat::Json, 200);
        w.write(&batch(0, 2, 10), None).unwrap();
        let err = w.write(&batch(2, 2, 500), None).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid `test` configuration: a single row (row 0 of a batch) does not fit in a json file of max_file_size = 200 bytes; raise `max_file_size`"
        );
        // The full file was finished before the new one was tried, and the empty one is gone.
        let files = w.take_finished();
        assert_eq!(files.len(), 1);
        assert_eq!(ids_of_json(&files[0].file.path), vec![0, 1]);
        assert!(!dir.path().join("f1").exists());
        w.discard_open().unwrap();
    }

    #[test]
    fn discard_open_removes_open_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), StagingFormat::Parquet, 1 << 20);
        w.write(&batch(0, 10, 4), Some("a")).unwrap();
        w.finish_all().unwrap();
        w.write(&batch(10, 10, 4), Some("a")).unwrap();
        assert!(dir.path().join("a/f1").exists());
        w.discard_open().unwrap();
        assert!(!dir.path().join("a/f1").exists());
        let files = w.take_finished();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].file.rows, 10);
        assert!(files[0].file.path.is_file());
    }
}
