//! Reading a collection back by primary key, for `vmig verify`.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use vmig_core::vector::META_PRIMARY_KEY;
use vmig_core::{
    PartitionId, PartitionInfo, Position, Result, RetryConfig, Source, SourceBatch, SourceContext,
    SourceStream,
};
use vmig_milvus::scan::{keyset_scan, page_rows_for, ScanSpec};
use vmig_milvus::MilvusClient;

/// A Milvus collection read in primary-key order, one page (`pk > last`) at a time.
#[derive(Debug)]
pub(crate) struct CollectionReader {
    client: MilvusClient,
    spec: ScanSpec,
}

impl CollectionReader {
    /// Reads the fields of `expected` (the migrated schema) that the collection has.
    pub(crate) async fn open(
        client: MilvusClient,
        collection: String,
        expected: &SchemaRef,
        retry: RetryConfig,
    ) -> Result<CollectionReader> {
        let info = client.describe_collection(&collection).await?;
        let fields: Vec<_> = info
            .arrow
            .fields()
            .iter()
            .filter(|f| expected.field_with_name(f.name()).is_ok() || *f.name() == info.primary_key)
            .cloned()
            .collect();
        let mut metadata = info.arrow.metadata().clone();
        metadata.insert(META_PRIMARY_KEY.to_string(), info.primary_key.clone());
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        Ok(CollectionReader {
            client,
            spec: ScanSpec {
                collection,
                partitions: Vec::new(),
                pk_field: info.primary_key,
                filter: String::new(),
                page_rows: page_rows_for(&schema, None),
                schema,
                snapshot_ts: 0,
                retry,
            },
        })
    }
}

#[async_trait]
impl Source for CollectionReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(vec![PartitionInfo {
            id: PartitionId::new("all"),
            estimated_rows: None,
            description: format!(
                "collection {} by `{}`",
                self.spec.collection, self.spec.pk_field
            ),
            target_partition: None,
        }])
    }

    fn open(
        &self,
        _partition: &PartitionId,
        _resume_after: Option<&Position>,
        _ctx: &SourceContext,
    ) -> Result<SourceStream> {
        let collection = self.spec.collection.clone();
        let pages = keyset_scan(self.client.clone(), self.spec.clone(), None);
        Ok(Box::pin(pages.map(move |page| {
            let (batch, last) = page.map_err(|e| {
                e.context(format!(
                    "reading collection `{collection}` back (it must be loaded: give the sink an `index` and `load = true`, or load it in Milvus)"
                ))
            })?;
            Ok(SourceBatch::new(batch, Position::encode(&last)?))
        })))
    }
}
