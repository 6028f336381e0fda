//! Reading a collection back by primary key, for `vmig verify`.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, Schema, SchemaRef};
use async_trait::async_trait;
use vmig_core::vector::{vector_info, META_PRIMARY_KEY};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, Source, SourceBatch, SourceContext,
    SourceStream,
};
use vmig_milvus::client::MAX_QUERY_WINDOW;
use vmig_milvus::{MilvusClient, PkValue};

/// Target bytes of one query reply, well under the 64 MiB proxy send limit of 2.3.5.
const PAGE_BYTES: usize = 16 << 20;

/// A Milvus collection read in primary-key order, one page (`pk > last`) at a time.
#[derive(Debug)]
pub(crate) struct CollectionReader {
    client: MilvusClient,
    collection: String,
    pk: String,
    schema: SchemaRef,
    page_rows: usize,
}

impl CollectionReader {
    /// Reads the fields of `expected` (the migrated schema) that the collection has.
    pub(crate) async fn open(
        client: MilvusClient,
        collection: String,
        expected: &SchemaRef,
    ) -> Result<CollectionReader> {
        let info = client.describe_collection(&collection).await?;
        let fields: Vec<_> = info
            .arrow
            .fields()
            .iter()
            .filter(|f| expected.field_with_name(f.name()).is_ok() || *f.name() == info.primary_key)
            .cloned()
            .collect();
        let row_bytes: usize = fields
            .iter()
            .map(|f| match vector_info(f) {
                Some(v) => v.kind.row_bytes(v.dim).unwrap_or(1024),
                None if f.data_type() == &DataType::Utf8 => 256,
                None => 8,
            })
            .sum::<usize>()
            .max(1);
        let mut metadata = info.arrow.metadata().clone();
        metadata.insert(META_PRIMARY_KEY.to_string(), info.primary_key.clone());
        Ok(CollectionReader {
            client,
            collection,
            pk: info.primary_key,
            schema: Arc::new(Schema::new_with_metadata(fields, metadata)),
            page_rows: (PAGE_BYTES / row_bytes).clamp(1, MAX_QUERY_WINDOW),
        })
    }
}

#[async_trait]
impl Source for CollectionReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(vec![PartitionInfo {
            id: PartitionId::new("all"),
            estimated_rows: None,
            description: format!("collection {} by `{}`", self.collection, self.pk),
            target_partition: None,
        }])
    }

    fn open(
        &self,
        _partition: &PartitionId,
        _resume_after: Option<&Position>,
        _ctx: &SourceContext,
    ) -> Result<SourceStream> {
        let state = (
            self.client.clone(),
            self.collection.clone(),
            self.pk.clone(),
            Arc::clone(&self.schema),
            self.page_rows,
            None::<PkValue>,
            false,
        );
        Ok(Box::pin(futures::stream::unfold(
            state,
            |(client, collection, pk, schema, rows, after, done)| async move {
                if done {
                    return None;
                }
                let page = client
                    .query_page(&collection, &pk, after.as_ref(), rows, &schema)
                    .await
                    .map_err(|e| {
                        e.context(format!(
                            "reading collection `{collection}` back (it must be loaded: give the sink an `index` and `load = true`, or load it in Milvus)"
                        ))
                    });
                let batch = match page {
                    Ok(b) => b,
                    Err(e) => {
                        return Some((Err(e), (client, collection, pk, schema, rows, after, true)))
                    }
                };
                if batch.num_rows() == 0 {
                    return None;
                }
                let last = batch.num_rows() - 1;
                let next = match batch.column_by_name(&pk) {
                    Some(c) if c.data_type() == &DataType::Int64 => {
                        PkValue::Int(c.as_primitive::<Int64Type>().value(last))
                    }
                    Some(c) if c.data_type() == &DataType::Utf8 => {
                        PkValue::Str(c.as_string::<i32>().value(last).to_string())
                    }
                    _ => {
                        let e = Error::schema(format!("the reply has no primary key `{pk}`"));
                        return Some((Err(e), (client, collection, pk, schema, rows, after, true)));
                    }
                };
                let position = Position::encode(&format!("{next:?}"));
                let item = position.map(|p| SourceBatch::new(batch, p));
                Some((
                    item,
                    (client, collection, pk, schema, rows, Some(next), false),
                ))
            },
        )))
    }
}
