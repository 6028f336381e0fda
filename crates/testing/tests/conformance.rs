//! The conformance kit can fail: a source breaking each contract is caught, with a message
//! naming the contract; the mock source passes. The same for resuming sinks: a sink that keeps
//! what an interrupted run wrote after its record, or loses what its record names, is caught; a
//! correct one passes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use vmig_core::{
    AbortReport, CommitReport, Error, FlushReport, PartitionId, PartitionInfo, Position, Result,
    Sink, Source, SourceContext, SourceStream,
};
use vmig_testing::conformance::{check_sink_resume, check_source, ResumeCase, ResumeReport};
use vmig_testing::gen::sample_batch;
use vmig_testing::mock::MockSource;

fn mock() -> MockSource {
    MockSource {
        schema: sample_batch(1, 0, 1, 4).schema(),
        partitions: vec![
            (0..4).map(|i| sample_batch(1, i * 10, 10, 4)).collect(),
            (0..3).map(|i| sample_batch(2, 100 + i * 5, 5, 4)).collect(),
        ],
        fail_at: None,
        target_partitions: vec![],
    }
}

/// A mock source with one contract broken.
#[derive(Debug)]
enum Broken {
    /// `open` spawns its reader at once.
    Eager,
    /// Reopening repeats the batch of the position.
    ResumeRepeats,
    /// The stream spawns a task that outlives it.
    Leaks,
}

#[derive(Debug)]
struct BrokenSource(MockSource, Broken);

#[async_trait]
impl Source for BrokenSource {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.0.schema()
    }
    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        self.0.partitions().await
    }
    fn open(
        &self,
        partition: &PartitionId,
        resume_after: Option<&Position>,
        ctx: &SourceContext,
    ) -> Result<SourceStream> {
        match self.1 {
            Broken::Eager => {
                tokio::spawn(tokio::time::sleep(Duration::from_secs(30)));
                self.0.open(partition, resume_after, ctx)
            }
            Broken::ResumeRepeats => {
                let back = match resume_after {
                    Some(p) => match p.decode::<usize>()? {
                        0 => None,
                        n => Some(Position::encode(&(n - 1))?),
                    },
                    None => None,
                };
                self.0.open(partition, back.as_ref(), ctx)
            }
            Broken::Leaks => {
                let inner = self.0.open(partition, resume_after, ctx)?;
                let mut spawned = false;
                Ok(Box::pin(inner.map(move |b| {
                    if !spawned {
                        spawned = true;
                        tokio::spawn(tokio::time::sleep(Duration::from_secs(30)));
                    }
                    b
                })))
            }
        }
    }
}

async fn failure(source: &dyn Source) -> String {
    let outcome = AssertUnwindSafe(check_source(source, 10))
        .catch_unwind()
        .await;
    let Err(panic) = outcome else {
        panic!("the kit accepted a broken source")
    };
    panic_text(panic)
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn the_mock_source_keeps_every_contract() {
    let report = check_source(&mock(), 10).await;
    assert_eq!(report.total_rows(), 55);
    assert_eq!(report.positions_checked, 7);
}

#[tokio::test]
async fn an_eager_open_is_caught() {
    let text = failure(&BrokenSource(mock(), Broken::Eager)).await;
    assert!(
        text.contains("opening partition p0 started 1 task(s) before the stream was polled: open must be lazy"),
        "{text}"
    );
}

#[tokio::test]
async fn a_resume_that_repeats_rows_is_caught() {
    let text = failure(&BrokenSource(mock(), Broken::ResumeRepeats)).await;
    assert!(
        text.contains("reopening partition p0 after position 0 (Position(Number(0))) gave 40 rows; 30 followed it"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stream_that_leaves_work_behind_is_caught() {
    let text = failure(&BrokenSource(mock(), Broken::Leaks)).await;
    assert!(
        text.contains("dropping the stream of partition p0 left 1 task(s) running"),
        "{text}"
    );
}

// ------------------------------------------------------------------ resuming sinks

/// A target in memory, shaped like the files sink's: the units of the run directory (by
/// number; each write finishes one, as a rotating writer does), which commit publishes as the
/// output.
#[derive(Debug, Default)]
struct Target {
    run_dir: BTreeMap<u32, RecordBatch>,
    output: Option<Vec<RecordBatch>>,
}

/// The targets of the trials, by trial number.
type Targets = Arc<Mutex<BTreeMap<usize, Target>>>;

/// A mistake a resuming sink can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Correct.
    None,
    /// `resume` trusts the run directory instead of the record: it keeps the units written
    /// after the record (it forgets to drop them) and numbers new units after them.
    TrustsTheDirectory,
    /// `suspend` removes every unit, also those its last record names, and `resume` does not
    /// check that they are there.
    SuspendDropsFlushedUnits,
}

#[derive(Debug)]
struct UnitSink {
    targets: Targets,
    trial: usize,
    flaw: Flaw,
    /// The next unit number.
    next: u32,
    /// Units made durable by the last flush.
    flushed: Vec<u32>,
    /// Rows written since the last flush.
    unflushed: u64,
}

impl UnitSink {
    fn with_target<T>(&self, f: impl FnOnce(&mut Target) -> T) -> T {
        f(self.targets.lock().unwrap().entry(self.trial).or_default())
    }
}

#[async_trait]
impl Sink for UnitSink {
    async fn prepare(&mut self, _: &SchemaRef) -> Result<()> {
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch, _: Option<&str>) -> Result<()> {
        let n = self.next;
        self.next += 1;
        self.unflushed += batch.num_rows() as u64;
        self.with_target(|t| t.run_dir.insert(n, batch));
        Ok(())
    }

    async fn flush(&mut self) -> Result<FlushReport> {
        self.flushed = self.with_target(|t| t.run_dir.keys().copied().collect());
        Ok(FlushReport::new(std::mem::take(&mut self.unflushed), 0))
    }

    fn resume_record(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "units": self.flushed, "next": self.next }))
    }

    async fn resume(&mut self, record: serde_json::Value) -> Result<()> {
        let units: Vec<u32> = serde_json::from_value(record["units"].clone())
            .map_err(|e| Error::External(Box::new(e)))?;
        self.next = serde_json::from_value(record["next"].clone())
            .map_err(|e| Error::External(Box::new(e)))?;
        let flaw = self.flaw;
        let (missing, last) = self.with_target(|t| {
            if flaw != Flaw::TrustsTheDirectory {
                t.run_dir.retain(|n, _| units.contains(n));
            }
            let missing = units.iter().find(|n| !t.run_dir.contains_key(n)).copied();
            (missing, t.run_dir.keys().max().copied())
        });
        if flaw == Flaw::TrustsTheDirectory {
            self.next = last.map_or(0, |n| n + 1);
        }
        if let (Some(n), Flaw::None) = (missing, flaw) {
            return Err(Error::data(format!("unit {n}"), "missing"));
        }
        self.flushed = units;
        Ok(())
    }

    async fn suspend(self: Box<Self>) -> Result<AbortReport> {
        let (flaw, flushed) = (self.flaw, self.flushed.clone());
        self.with_target(|t| {
            t.run_dir
                .retain(|n, _| flaw != Flaw::SuspendDropsFlushedUnits && flushed.contains(n));
        });
        Ok(AbortReport::new(format!("{} units kept", flushed.len())))
    }

    async fn commit(self: Box<Self>) -> Result<CommitReport> {
        let rows = self.with_target(|t| {
            let units: Vec<RecordBatch> = std::mem::take(&mut t.run_dir).into_values().collect();
            let rows = units.iter().map(|b| b.num_rows() as u64).sum();
            t.output = Some(units);
            rows
        });
        Ok(CommitReport::new("memory", rows, 0, Vec::new()))
    }
}

async fn check_unit_sink(flaw: Flaw) -> std::result::Result<ResumeReport, String> {
    let targets = Targets::default();
    let make_targets = Arc::clone(&targets);
    let make = move |trial: usize| {
        let sink: Box<dyn Sink> = Box::new(UnitSink {
            targets: Arc::clone(&make_targets),
            trial,
            flaw,
            next: 0,
            flushed: Vec::new(),
            unflushed: 0,
        });
        async move { Ok(sink) }.boxed()
    };
    let read_targets = Arc::clone(&targets);
    let read_back = move |trial: usize| {
        let output = read_targets
            .lock()
            .unwrap()
            .get(&trial)
            .and_then(|t| t.output.clone());
        async move {
            let units = output.ok_or_else(|| Error::External("nothing committed".into()))?;
            Ok(arrow::compute::concat_batches(&units[0].schema(), &units)?)
        }
        .boxed()
    };
    let case = ResumeCase {
        make: &make,
        read_back: &read_back,
        batches: (0..4).map(|i| sample_batch(5, i * 10, 10, 4)).collect(),
        partitions: vec![],
        key: "id",
    };
    AssertUnwindSafe(check_sink_resume(case))
        .catch_unwind()
        .await
        .map_err(panic_text)
}

#[tokio::test]
async fn a_correct_resuming_sink_passes_every_trial() {
    let report = check_unit_sink(Flaw::None).await.unwrap();
    assert_eq!(report.trials.len(), 15, "{report:?}");
    assert_eq!(report.trials[0], "killed after flush 1 → committed");
    assert_eq!(
        report.trials[4],
        "killed with batch 0 written but not flushed → committed"
    );
    assert_eq!(
        report.trials[14],
        "suspended with batch 1 written but not flushed → killed after flush 2 → suspended with batch 2 written but not flushed → committed"
    );
    // Every stop after a flush is followed by a resume (a stop before any flush is not).
    assert_eq!(report.resumes, 17);
}

#[tokio::test]
async fn a_sink_that_keeps_units_written_after_its_record_is_caught() {
    let text = check_unit_sink(Flaw::TrustsTheDirectory).await.unwrap_err();
    assert_eq!(
        text,
        "trial 6 (killed with batch 1 written but not flushed → committed): the target holds 50 rows; an uninterrupted run writes 40 (keys there too often: [10 ×2, 11 ×2, 12 ×2, 13 ×2, 14 ×2, … (10 in all)]; keys missing: [])"
    );
}

#[tokio::test]
async fn a_sink_whose_suspend_drops_flushed_units_is_caught() {
    let text = check_unit_sink(Flaw::SuspendDropsFlushedUnits)
        .await
        .unwrap_err();
    assert_eq!(
        text,
        "trial 7 (suspended with batch 1 written but not flushed → committed): the target holds 30 rows; an uninterrupted run writes 40 (keys there too often: []; keys missing: [0, 1, 2, 3, 4, … (10 in all)])"
    );
}
