//! The conformance kit can fail: a source breaking each contract is caught, with a message
//! naming the contract; the mock source passes.
#![allow(clippy::unwrap_used)]

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use vmig_core::{
    PartitionId, PartitionInfo, Position, Result, Source, SourceContext, SourceStream,
};
use vmig_testing::conformance::check_source;
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
