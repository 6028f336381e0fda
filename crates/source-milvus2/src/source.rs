//! The runtime `milvus2` source: planning (collections, partitions, schema, snapshot) and the
//! page streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use vmig_core::vector::{self, META_COLLECTION, META_METRIC, META_PRIMARY_KEY};
use vmig_core::{
    Error, PartitionId, PartitionInfo, Position, Result, RetryConfig, Source, SourceBatch,
    SourceContext, SourceStream,
};
use vmig_milvus::meta::CollectionSettings;
use vmig_milvus::proto::common::ConsistencyLevel;
use vmig_milvus::scan::{keyset_scan, page_rows_for, ScanSpec};
use vmig_milvus::{CollectionInfo, KeysetQuery, MilvusClient, PkValue};

use crate::{IdPolicy, Milvus2SourceConfig, NAME};

/// How long loading a collection may take.
const LOAD_WAIT: Duration = Duration::from_secs(3600);

/// One unit of work: a Milvus partition (or a whole partition-key collection).
#[derive(Debug, Clone)]
struct PartitionScan {
    id: PartitionId,
    collection: String,
    /// Milvus partitions to query (empty: all).
    partitions: Vec<String>,
    /// Where the rows go in the target.
    target: Option<String>,
    estimated: Option<u64>,
}

/// Releases the collections vmig loaded once every unit's stream has ended.
#[derive(Debug)]
struct Release {
    client: MilvusClient,
    collections: Vec<String>,
    remaining: AtomicUsize,
}

impl Release {
    async fn unit_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        for c in &self.collections {
            match self.client.release(c).await {
                Ok(()) => tracing::info!(collection = %c, "released the collection vmig loaded"),
                Err(error) => {
                    tracing::warn!(collection = %c, %error, "could not release the collection vmig loaded")
                }
            }
        }
    }
}

/// Reads Milvus 2.x collections by primary key (see the crate docs).
#[derive(Debug)]
pub struct Milvus2Source {
    client: MilvusClient,
    schema: SchemaRef,
    pk: String,
    filter: String,
    page_rows: usize,
    snapshot_ts: u64,
    units: Vec<PartitionScan>,
    release: Option<Arc<Release>>,
    retry: RetryConfig,
}

fn same_fields(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

impl Milvus2Source {
    /// Describes the configured collections, makes sure they are loaded (loading them only when
    /// `load = true`), plans one unit per partition and pins the snapshot.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing collection or partition, a collection that is not loaded
    /// (without `load = true`), or collections whose fields differ; RPC failures.
    pub async fn open(config: Milvus2SourceConfig, client: MilvusClient) -> Result<Self> {
        let names = config.collection_names();
        let mut first: Option<CollectionInfo> = None;
        let mut units = Vec::new();
        let mut loaded_by_us = Vec::new();
        let mut all_partitions = Vec::new();
        let filter = config.filter.clone().unwrap_or_default();
        for name in &names {
            if !client.has_collection(name).await? {
                return Err(Error::config(
                    NAME,
                    format!(
                        "collection `{name}` does not exist at {} (database `{}`)",
                        client.uri(),
                        if client.db().is_empty() {
                            "default"
                        } else {
                            client.db()
                        }
                    ),
                ));
            }
            let info = client.describe_collection(name).await?;
            if let Some(f) = &first {
                if !same_fields(&f.arrow, &info.arrow) {
                    return Err(Error::config(
                        NAME,
                        format!(
                            "collections `{}` and `{name}` have different fields; `collections` must list collections with the same schema (run one job per collection otherwise)",
                            f.schema.name
                        ),
                    ));
                }
            }
            if !client.is_loaded(name).await? {
                if !config.load {
                    return Err(Error::config(
                        NAME,
                        format!(
                            "collection `{name}` is not loaded, and Milvus can query only loaded collections: load it (pymilvus `Collection(\"{name}\").load()`), or set `load = true` to let vmig load it and release it when done"
                        ),
                    ));
                }
                tracing::info!(collection = %name, "loading the source collection (load = true)");
                client
                    .load(name, LOAD_WAIT)
                    .await
                    .map_err(|e| e.context(format!("loading source collection `{name}`")))?;
                loaded_by_us.push(name.clone());
            }
            // Milvus Lite does not serve ShowPartitions: the collection is read as one unit,
            // into the target's default partition.
            let partitions = match client.show_partitions(name).await {
                Err(e)
                    if vmig_milvus::error::kind(&e)
                        == Some(vmig_milvus::MilvusErrorKind::Unimplemented)
                        && config.partitions.is_empty() =>
                {
                    tracing::warn!(
                        collection = %name,
                        "the server does not list partitions (ShowPartitions is unimplemented, as in Milvus Lite): the collection is read as one unit and its rows go to the target's default partition"
                    );
                    None
                }
                other => Some(other?),
            };
            let listed = partitions.is_some();
            let partitions = partitions.unwrap_or_default();
            for p in &config.partitions {
                if !partitions.contains(p) {
                    return Err(Error::config(
                        NAME,
                        format!(
                            "collection `{name}` has no partition `{p}` (it has: {})",
                            partitions.join(", ")
                        ),
                    ));
                }
            }
            if info.partition_key.is_some() || !listed {
                if !config.partitions.is_empty() {
                    return Err(Error::config(
                        NAME,
                        format!(
                            "collection `{name}` has a partition key, and Milvus does not let such collections be queried by partition name: remove `partitions` (use `filter` on the partition-key field instead)"
                        ),
                    ));
                }
                units.push(PartitionScan {
                    id: PartitionId::new(name.clone()),
                    collection: name.clone(),
                    partitions: Vec::new(),
                    target: None,
                    estimated: None,
                });
            } else {
                for p in &partitions {
                    if !config.partitions.is_empty() && !config.partitions.contains(p) {
                        continue;
                    }
                    units.push(PartitionScan {
                        id: PartitionId::new(format!("{name}/{p}")),
                        collection: name.clone(),
                        partitions: vec![p.clone()],
                        target: Some(p.clone()),
                        estimated: None,
                    });
                }
            }
            if first.is_none() {
                all_partitions = partitions;
                first = Some(info);
            }
        }
        let info = first.ok_or_else(|| Error::config(NAME, "no collection configured"))?;
        let indexes = client.describe_indexes(&info.schema.name).await?;
        let settings = CollectionSettings {
            description: Some(info.description.clone()).filter(|d| !d.is_empty()),
            shards: Some(info.shards).filter(|s| *s > 0),
            consistency: ConsistencyLevel::try_from(info.consistency_level).ok(),
            dynamic_field: Some(info.dynamic_field),
            partitions: all_partitions,
            indexes: indexes.clone(),
            regenerate_ids: config.ids == IdPolicy::Regenerate,
        };
        let mut metadata = info.arrow.metadata().clone();
        metadata.extend(settings.entries());
        metadata.insert(META_PRIMARY_KEY, info.primary_key.clone());
        metadata.insert(META_COLLECTION, info.schema.name.clone());
        let vector_index = indexes.iter().find(|i| {
            info.arrow
                .field_with_name(&i.field)
                .ok()
                .and_then(vector::vector_info)
                .is_some()
        });
        if let Some(i) = vector_index.filter(|i| !i.metric_type.is_empty()) {
            metadata.insert(META_METRIC, i.metric_type.clone());
        }
        let schema: SchemaRef = Arc::new(Schema::new_with_metadata(
            info.arrow.fields().clone(),
            metadata,
        ));
        let page_rows = page_rows_for(&schema, config.batch_size);

        // The first page, read Strong, pins the snapshot on servers that report a session_ts.
        let probe = KeysetQuery {
            collection: &info.schema.name,
            partitions: &[],
            pk_field: &info.primary_key,
            filter: &filter,
            after: None,
            limit: 1,
            schema: &schema,
            snapshot_ts: 0,
        };
        let what = format!("Milvus query of `{}`", info.schema.name);
        let (_, snapshot_ts) = config
            .retry
            .run(&what, || client.query_keyset(&probe))
            .await
            .map_err(|e| {
                e.context(format!(
                    "querying `{}` (check the `filter` expression)",
                    info.schema.name
                ))
            })?;
        if snapshot_ts == 0 {
            tracing::info!(
                "the server pins no snapshot timestamp (Milvus 2.3): rows written to the source during the copy may or may not be copied"
            );
        }
        if filter.is_empty() {
            for u in &mut units {
                u.estimated = Some(client.count_in(&u.collection, &u.partitions).await?);
            }
        }
        let release = (!loaded_by_us.is_empty()).then(|| {
            Arc::new(Release {
                client: client.clone(),
                collections: loaded_by_us,
                remaining: AtomicUsize::new(units.len()),
            })
        });
        Ok(Milvus2Source {
            client,
            schema,
            pk: info.primary_key,
            filter,
            page_rows,
            snapshot_ts,
            units,
            release,
            retry: config.retry,
        })
    }

    /// Rows per query page.
    pub fn page_rows(&self) -> usize {
        self.page_rows
    }
}

#[async_trait]
impl Source for Milvus2Source {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>> {
        Ok(self
            .units
            .iter()
            .map(|u| PartitionInfo {
                id: u.id.clone(),
                estimated_rows: u.estimated,
                description: match u.partitions.as_slice() {
                    [] => format!("collection {} by `{}`", u.collection, self.pk),
                    ps => format!(
                        "collection {} partition {} by `{}`",
                        u.collection,
                        ps.join(","),
                        self.pk
                    ),
                },
                target_partition: u.target.clone(),
            })
            .collect())
    }

    fn open(
        &self,
        partition: &PartitionId,
        resume_after: Option<&Position>,
        _ctx: &SourceContext,
    ) -> Result<SourceStream> {
        let unit = self
            .units
            .iter()
            .find(|u| &u.id == partition)
            .ok_or_else(|| Error::config(NAME, format!("no partition `{partition}`")))?;
        let after: Option<PkValue> = resume_after.map(Position::decode).transpose()?;
        let spec = ScanSpec {
            collection: unit.collection.clone(),
            partitions: unit.partitions.clone(),
            pk_field: self.pk.clone(),
            filter: self.filter.clone(),
            schema: Arc::clone(&self.schema),
            page_rows: self.page_rows,
            snapshot_ts: self.snapshot_ts,
            retry: self.retry,
        };
        let id = unit.id.clone();
        let schema = Arc::clone(&self.schema);
        let pages = keyset_scan(self.client.clone(), spec, after).map(move |page| {
            let (batch, last) =
                page.map_err(|e| e.context(format!("reading Milvus partition {id}")))?;
            // The reply's schema has no metadata; every batch carries the declared one.
            let batch = batch.with_schema(Arc::clone(&schema))?;
            Ok(SourceBatch::new(batch, Position::encode(&last)?))
        });
        let release = self.release.clone();
        let end = futures::stream::once(async move {
            if let Some(r) = release {
                r.unit_done().await;
            }
        })
        .filter_map(|()| async { None });
        Ok(Box::pin(pages.chain(end)))
    }
}
