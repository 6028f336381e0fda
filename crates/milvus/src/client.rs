//! The connection and the RPCs vmig uses.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use milvus::proto::common::{ConsistencyLevel, ImportState, KeyValuePair, LoadState, Status};
use milvus::proto::milvus::milvus_service_client::MilvusServiceClient;
use milvus::proto::milvus::{
    CreateCollectionRequest, CreateIndexRequest, CreatePartitionRequest, DeleteRequest,
    DescribeCollectionRequest, DescribeIndexRequest, DropCollectionRequest, FlushRequest,
    GetFlushStateRequest, GetImportStateRequest, GetImportStateResponse, GetLoadStateRequest,
    GetVersionRequest, HasCollectionRequest, HasPartitionRequest, ImportRequest, InsertRequest,
    ListImportTasksRequest, LoadCollectionRequest, QueryRequest, QueryResults,
    ReleaseCollectionRequest, RenameCollectionRequest, ShowCollectionsRequest,
    ShowPartitionsRequest, UpsertRequest,
};
use milvus::proto::schema::{scalar_field, CollectionSchema, FieldData};
use prost::Message as _;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use vmig_core::{Error, Result};

use crate::convert;
use crate::error::{classify_rpc, classify_status, MilvusError, MilvusErrorKind};
use crate::params::{pair, value_of};
use crate::probe;
use crate::version::{ServerKind, ServerVersion};

/// Largest reply accepted (query pages can be large; formats.md E).
pub const MAX_DECODING_BYTES: usize = 256 * 1024 * 1024;
/// Largest request sent: the proxy's `serverMaxRecvSize` (64 MiB).
pub const MAX_ENCODING_BYTES: usize = 64 * 1024 * 1024;
/// The query window: `offset + limit ≤ 16384` (`quotaAndLimits.limits.maxQueryResultWindow`).
pub const MAX_QUERY_WINDOW: usize = 16_384;

/// How to reach and authenticate to a Milvus server.
///
/// `Debug` shows no secret: the token and password as `***`, the URI without its user-info.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `http://host:port`, `https://host:port`, or `host:port` (plain HTTP/2). A
    /// `user:password@` in it is sent as the credentials when neither `token` nor `user` is set,
    /// and never shown or sent as part of the address.
    pub uri: String,
    /// API token (`user:password` on self-hosted servers, an API key on Zilliz Cloud); wins
    /// over `user`/`password`.
    pub token: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<String>,
    /// Database (`default` when `None`).
    pub db: Option<String>,
    /// PEM file of a CA to trust (turns TLS on).
    pub ca_cert: Option<PathBuf>,
    /// Connect timeout, also used for the connection check.
    pub timeout: Duration,
    /// Timeout of every other request (inserts, queries, …).
    pub request_timeout: Duration,
    /// Largest request the client sends (default [`MAX_ENCODING_BYTES`], the proxy's limit);
    /// larger ones fail as [`MilvusErrorKind::TooLarge`] before reaching the server.
    pub max_request_bytes: usize,
}

impl ConnectOptions {
    /// Options for `uri` without credentials, 10 s connect and 300 s request timeouts.
    pub fn new(uri: impl Into<String>) -> Self {
        ConnectOptions {
            uri: uri.into(),
            token: None,
            user: None,
            password: None,
            db: None,
            ca_cert: None,
            timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            max_request_bytes: MAX_ENCODING_BYTES,
        }
    }

    /// Fills unset credentials from the environment: `MILVUS_TOKEN`, `MILVUS_USER` and
    /// `MILVUS_PASSWORD` (empty values count as unset). Plugins call this so secrets need not
    /// be written into job files.
    pub fn with_env_credentials(mut self) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        self.token = self.token.or_else(|| env("MILVUS_TOKEN"));
        self.user = self.user.or_else(|| env("MILVUS_USER"));
        self.password = self.password.or_else(|| env("MILVUS_PASSWORD"));
        self
    }

    /// Options from the connection keys a plugin config declares (`uri`, `token`, `user`,
    /// `password`, `db`, `ca_cert`: the same keys in the `milvus2` source and sink), with unset
    /// credentials taken from the environment ([`ConnectOptions::with_env_credentials`]) and the
    /// other settings at their defaults. `ca_cert` is the PEM path already resolved against
    /// the job file. The one place the plugins turn their keys into a connection.
    pub fn from_config(
        uri: &str,
        token: Option<&str>,
        user: Option<&str>,
        password: Option<&str>,
        db: Option<&str>,
        ca_cert: Option<PathBuf>,
    ) -> Self {
        let mut o = ConnectOptions::new(uri);
        o.token = token.map(str::to_owned);
        o.user = user.map(str::to_owned);
        o.password = password.map(str::to_owned);
        o.db = db.map(str::to_owned);
        o.ca_cert = ca_cert;
        o.with_env_credentials()
    }

    /// `http://host:port` form of [`ConnectOptions::uri`], without user-info. A `host:port`
    /// without a scheme is `https://` with a `ca_cert` or on a Zilliz Cloud host (which serves
    /// TLS only), else `http://`.
    pub fn normalized_uri(&self) -> String {
        let (uri, _) = vmig_core::redact::split_userinfo(&self.uri);
        let uri = uri.trim_end_matches('/');
        if uri.contains("://") {
            uri.to_string()
        } else if self.ca_cert.is_some()
            || crate::version::ServerVersion::new(uri, None).is_zilliz()
        {
            format!("https://{uri}")
        } else {
            format!("http://{uri}")
        }
    }

    /// The `user:password` written in [`ConnectOptions::uri`], percent-decoded.
    fn uri_credentials(&self) -> Option<String> {
        let (_, info) = vmig_core::redact::split_userinfo(&self.uri);
        info.map(|i| {
            percent_encoding::percent_decode_str(i)
                .decode_utf8_lossy()
                .into_owned()
        })
    }

    /// The credential as sent to the REST API (`Authorization: Bearer …`): the token, else
    /// `user:password`, else the `user:password` of the uri.
    pub fn rest_token(&self) -> Option<String> {
        match (&self.token, &self.user) {
            (Some(t), _) if !t.is_empty() => Some(t.clone()),
            (_, Some(u)) if !u.is_empty() => {
                Some(format!("{u}:{}", self.password.as_deref().unwrap_or("")))
            }
            _ => self.uri_credentials(),
        }
    }

    fn authorization(&self) -> Option<String> {
        let raw = self.rest_token()?;
        Some(base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |o: &Option<String>| o.as_ref().map(|_| vmig_core::redact::MASK);
        f.debug_struct("ConnectOptions")
            .field("uri", &vmig_core::redact::url(&self.uri))
            .field("token", &masked(&self.token))
            .field("user", &self.user)
            .field("password", &masked(&self.password))
            .field("db", &self.db)
            .field("ca_cert", &self.ca_cert)
            .field("timeout", &self.timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish()
    }
}

/// Adds `authorization` (base64 of `user:password` or of the token, as pymilvus sends it) and
/// `dbname` metadata to every request.
#[derive(Clone)]
pub struct AuthInterceptor {
    authorization: Option<MetadataValue<Ascii>>,
    db: Option<MetadataValue<Ascii>>,
}

impl fmt::Debug for AuthInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInterceptor")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| vmig_core::redact::MASK),
            )
            .field("db", &self.db)
            .finish()
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(a) = &self.authorization {
            req.metadata_mut().insert("authorization", a.clone());
        }
        if let Some(db) = &self.db {
            req.metadata_mut().insert("dbname", db.clone());
        }
        Ok(req)
    }
}

type Grpc = MilvusServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// Which consistency a query reads with.
pub type Consistency = ConsistencyLevel;

/// A primary-key value: the position of [`MilvusClient::query_page`].
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PkValue {
    /// An Int64 key.
    Int(i64),
    /// A VarChar key.
    Str(String),
}

impl PkValue {
    fn expr(&self, field: &str, op: &str) -> String {
        match self {
            PkValue::Int(v) => format!("{field} {op} {v}"),
            PkValue::Str(s) => {
                let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
                format!("{field} {op} \"{escaped}\"")
            }
        }
    }
}

/// The description of a collection.
#[derive(Debug, Clone)]
pub struct CollectionInfo {
    /// The server's schema.
    pub schema: CollectionSchema,
    /// The same as Arrow (see [`crate::schema::arrow_schema`]).
    pub arrow: SchemaRef,
    /// The primary-key field name.
    pub primary_key: String,
    /// Whether Milvus generates primary keys.
    pub auto_id: bool,
    /// Number of shards.
    pub shards: i32,
    /// Default consistency level.
    pub consistency_level: i32,
    /// The collection description.
    pub description: String,
    /// Whether the dynamic field (`$meta`) is enabled; [`CollectionInfo::arrow`] then ends
    /// with a `$meta` JSON field.
    pub dynamic_field: bool,
    /// The partition-key field, if any.
    pub partition_key: Option<String>,
    /// When the collection was created, in milliseconds since the Unix epoch (the physical
    /// part of its hybrid `created_timestamp`: the bits above the low 18 logical ones).
    pub created_ms: u64,
}

/// One page of primary-key keyset paging (see [`MilvusClient::query_keyset`]).
#[derive(Debug, Clone)]
pub struct KeysetQuery<'a> {
    /// The collection.
    pub collection: &'a str,
    /// Partitions to read (all when empty).
    pub partitions: &'a [String],
    /// The primary-key field.
    pub pk_field: &'a str,
    /// An extra boolean expression rows must match (none when empty).
    pub filter: &'a str,
    /// Rows strictly after this key (all when `None`).
    pub after: Option<&'a PkValue>,
    /// At most this many rows (1..=[`MAX_QUERY_WINDOW`]).
    pub limit: usize,
    /// The output fields (must include `pk_field`).
    pub schema: &'a SchemaRef,
    /// A pinned read timestamp: `0` reads with Strong consistency; otherwise it is sent as the
    /// guarantee timestamp, which servers that pin iterator reads (2.4+) use as the MVCC
    /// snapshot of every page.
    pub snapshot_ts: u64,
}

/// The state of one 2.3 bulk-import task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTaskState {
    /// The task id.
    pub task: i64,
    /// The raw state (see `ImportState`).
    pub state: ImportState,
    /// Rows imported so far.
    pub row_count: i64,
    /// The server's `failed_reason`, when failed.
    pub failed_reason: Option<String>,
    /// The files of the task as the server lists them (its `files` info: the paths given to
    /// `Import`, joined by commas).
    pub files: String,
}

/// A connected Milvus 2.x client. Cheap to clone (clones share the HTTP/2 connection).
#[derive(Clone)]
pub struct MilvusClient {
    grpc: Grpc,
    max_request_bytes: usize,
    uri: String,
    db: String,
    version: ServerVersion,
}

impl fmt::Debug for MilvusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MilvusClient")
            .field("uri", &self.uri)
            .field("db", &self.db)
            .field("version", &self.version)
            .finish()
    }
}

fn status_of(s: Option<Status>) -> Status {
    s.unwrap_or_default()
}

/// A gRPC response that carries a Milvus [`Status`] (a missing one counts as success).
trait WithStatus {
    /// The response's status.
    fn status(&self) -> Status;
}

impl WithStatus for Status {
    fn status(&self) -> Status {
        self.clone()
    }
}

/// Implements [`WithStatus`] for responses with an `Option<Status>` field `status`.
macro_rules! with_status_field {
    ($($t:ty),* $(,)?) => {$(
        impl WithStatus for $t {
            fn status(&self) -> Status {
                status_of(self.status.clone())
            }
        }
    )*};
}

with_status_field!(
    milvus::proto::milvus::GetVersionResponse,
    milvus::proto::milvus::ShowCollectionsResponse,
    milvus::proto::milvus::BoolResponse,
    milvus::proto::milvus::DescribeCollectionResponse,
    milvus::proto::milvus::ShowPartitionsResponse,
    milvus::proto::milvus::GetLoadStateResponse,
    milvus::proto::milvus::MutationResult,
    milvus::proto::milvus::FlushResponse,
    milvus::proto::milvus::GetFlushStateResponse,
    milvus::proto::milvus::QueryResults,
    milvus::proto::milvus::ImportResponse,
    milvus::proto::milvus::GetImportStateResponse,
    milvus::proto::milvus::ListImportTasksResponse,
);

/// The answer of one awaited RPC: a transport or gRPC failure is classified as the RPC `rpc`
/// ([`classify_rpc`]), a non-success status in the response as the operation `what`
/// ([`classify_status`]); otherwise the response. The one path every RPC's errors take.
fn answer<T: WithStatus>(
    rpc: &str,
    what: &str,
    result: std::result::Result<tonic::Response<T>, tonic::Status>,
) -> Result<T> {
    let r = result.map_err(|s| classify_rpc(rpc, &s))?.into_inner();
    classify_status(what, &r.status())?;
    Ok(r)
}

impl MilvusClient {
    /// Connects and checks the connection (server version, then the credentials and database
    /// with a `ShowCollections`), so a server that is down or credentials that are wrong fail
    /// here with a message that says so — never containing the password or token.
    ///
    /// # Errors
    /// [`Error::Transient`] when the server cannot be reached; [`Error::External`] holding a
    /// [`MilvusError`] of kind [`MilvusErrorKind::Auth`] for rejected credentials.
    pub async fn connect(opts: &ConnectOptions) -> Result<MilvusClient> {
        let uri = opts.normalized_uri();
        let unreachable = |detail: String| Error::Transient {
            message: format!("cannot reach Milvus at {uri}: {detail} — is it running?"),
            source: None,
        };
        let mut endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| {
                let shown = vmig_core::redact::url(&opts.uri);
                Error::config("milvus", format!("invalid uri `{shown}`: {e}"))
            })?
            .connect_timeout(opts.timeout)
            .timeout(opts.request_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if uri.starts_with("https://") || opts.ca_cert.is_some() {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = &opts.ca_cert {
                let pem = std::fs::read(ca).map_err(|e| {
                    Error::config(
                        "milvus",
                        format!("cannot read ca_cert {}: {e}", ca.display()),
                    )
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Error::config("milvus", format!("TLS setup failed: {e}")))?;
        }
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => return Err(probe::explain(unreachable(transport_detail(&e)), &uri).await),
        };
        let ascii = |v: String, what: &str| {
            MetadataValue::try_from(v).map_err(|_| {
                Error::config(
                    "milvus",
                    format!("{what} contains characters not allowed in a gRPC header"),
                )
            })
        };
        let interceptor = AuthInterceptor {
            authorization: opts
                .authorization()
                .map(|a| ascii(a, "the credential"))
                .transpose()?,
            db: opts
                .db
                .clone()
                .filter(|d| !d.is_empty())
                .map(|d| ascii(d, "db"))
                .transpose()?,
        };
        let grpc = MilvusServiceClient::with_interceptor(channel, interceptor)
            .max_decoding_message_size(MAX_DECODING_BYTES)
            .max_encoding_message_size(opts.max_request_bytes.max(MAX_ENCODING_BYTES));
        let mut client = MilvusClient {
            grpc,
            max_request_bytes: opts.max_request_bytes,
            uri: uri.clone(),
            db: opts.db.clone().unwrap_or_default(),
            version: ServerVersion::unknown(ServerKind::Milvus),
        };
        let check = async {
            // milvus-lite 2.5 does not implement `GetVersion`: its version is then unknown.
            let raw = match client.grpc.get_version(GetVersionRequest {}).await {
                Err(s) if s.code() == tonic::Code::Unimplemented => None,
                other => Some(answer("GetVersion", "GetVersion", other)?.version),
            };
            client.version = ServerVersion::new(&uri, raw.as_deref());
            answer(
                "ShowCollections",
                "ShowCollections",
                client
                    .grpc
                    .show_collections(ShowCollectionsRequest {
                        db_name: client.db.clone(),
                        ..Default::default()
                    })
                    .await,
            )
            .map(drop)
        };
        // A server that is not gRPC (wrong port, TLS) fails here: say what it is.
        match tokio::time::timeout(opts.timeout, check).await {
            Err(_) => {
                let e = unreachable(format!("no answer within {:?}", opts.timeout));
                Err(probe::explain(e, &uri).await)
            }
            Ok(Err(e)) => Err(probe::explain(explain_connect_error(e, opts, &uri), &uri).await),
            Ok(Ok(())) => Ok(client),
        }
    }

    /// `http://host:port` this client talks to.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The database (empty: `default`).
    pub fn db(&self) -> &str {
        &self.db
    }

    /// The server's version string (e.g. `v2.3.5-lite`; empty when the server does not
    /// implement `GetVersion`).
    pub fn server_version(&self) -> &str {
        self.version.raw()
    }

    /// The target's product and version ([`ServerVersion`]), for picking the import path and
    /// refusing features the target cannot hold.
    pub fn server(&self) -> &ServerVersion {
        &self.version
    }

    /// The raw generated gRPC client, for RPCs this layer does not wrap.
    pub fn grpc(&self) -> Grpc {
        self.grpc.clone()
    }

    /// Whether `collection` exists.
    ///
    /// # Errors
    /// RPC failures (see [`crate::error`]).
    pub async fn has_collection(&self, collection: &str) -> Result<bool> {
        let r = answer(
            "HasCollection",
            "HasCollection",
            self.grpc
                .clone()
                .has_collection(HasCollectionRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    ..Default::default()
                })
                .await,
        )?;
        Ok(r.value)
    }

    /// Describes `collection`.
    ///
    /// # Errors
    /// RPC failures; [`Error::Unsupported`] when a field cannot be mapped to Arrow.
    pub async fn describe_collection(&self, collection: &str) -> Result<CollectionInfo> {
        let r = answer(
            "DescribeCollection",
            &format!("DescribeCollection `{collection}`"),
            self.grpc
                .clone()
                .describe_collection(DescribeCollectionRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    ..Default::default()
                })
                .await,
        )?;
        let schema = r.schema.unwrap_or_default();
        let pk = schema.fields.iter().find(|f| f.is_primary_key);
        let primary_key = pk.map(|f| f.name.clone()).unwrap_or_default();
        let auto_id = pk.is_some_and(|f| f.auto_id);
        // The dynamic field is read as a JSON column named `$meta`, whatever the server calls
        // it in the schema (2.3 lists it with `is_dynamic`).
        // The collection's properties (TTL, mmap, …) come with the response, not the schema.
        let mut visible = CollectionSchema {
            fields: schema
                .fields
                .iter()
                .filter(|f| !f.is_dynamic)
                .cloned()
                .collect(),
            properties: if schema.properties.is_empty() {
                r.properties.clone()
            } else {
                schema.properties.clone()
            },
            ..schema.clone()
        };
        if schema.enable_dynamic_field {
            visible.fields.push(milvus::proto::schema::FieldSchema {
                name: crate::meta::DYNAMIC_FIELD_NAME.to_string(),
                data_type: milvus::proto::schema::DataType::Json as i32,
                is_dynamic: true,
                ..Default::default()
            });
        }
        Ok(CollectionInfo {
            arrow: crate::schema::arrow_schema(&visible)?,
            primary_key,
            auto_id,
            shards: r.shards_num,
            consistency_level: r.consistency_level,
            description: schema.description.clone(),
            dynamic_field: schema.enable_dynamic_field,
            created_ms: r.created_timestamp >> 18,
            partition_key: schema
                .fields
                .iter()
                .find(|f| f.is_partition_key)
                .map(|f| f.name.clone()),
            schema,
        })
    }

    /// The partitions of `collection` (names, in the server's order).
    ///
    /// # Errors
    /// RPC failures.
    pub async fn show_partitions(&self, collection: &str) -> Result<Vec<String>> {
        let r = answer(
            "ShowPartitions",
            &format!("listing the partitions of `{collection}`"),
            self.grpc
                .clone()
                .show_partitions(ShowPartitionsRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    ..Default::default()
                })
                .await,
        )?;
        Ok(r.partition_names)
    }

    /// The indexes of `collection` (none when it has none).
    ///
    /// # Errors
    /// RPC failures other than "index not found".
    pub async fn describe_indexes(&self, collection: &str) -> Result<Vec<crate::meta::IndexSpec>> {
        let r = self
            .grpc
            .clone()
            .describe_index(DescribeIndexRequest {
                db_name: self.db.clone(),
                collection_name: collection.to_string(),
                ..Default::default()
            })
            .await
            .map_err(|s| classify_rpc("DescribeIndex", &s))?
            .into_inner();
        let status = status_of(r.status);
        #[allow(deprecated)]
        let legacy_code = status.error_code;
        if status.code == 700
            || legacy_code == milvus::proto::common::ErrorCode::IndexNotExist as i32
            || status.reason.contains("index not found")
            || status.reason.contains("index not exist")
        {
            return Ok(Vec::new());
        }
        classify_status(
            &format!("describing the indexes of `{collection}`"),
            &status,
        )?;
        Ok(r.index_descriptions
            .into_iter()
            .map(|d| {
                let get = |k: &str| value_of(&d.params, k);
                let mut params: serde_json::Map<String, serde_json::Value> = get("params")
                    .and_then(|p| serde_json::from_str(&p).ok())
                    .unwrap_or_default();
                // Older servers list build parameters as separate pairs.
                for p in &d.params {
                    if !matches!(p.key.as_str(), "index_type" | "metric_type" | "params") {
                        let v = serde_json::from_str(&p.value)
                            .unwrap_or_else(|_| serde_json::Value::String(p.value.clone()));
                        params.entry(p.key.clone()).or_insert(v);
                    }
                }
                crate::meta::IndexSpec {
                    field: d.field_name.clone(),
                    index_type: get("index_type").unwrap_or_default(),
                    metric_type: get("metric_type").unwrap_or_default(),
                    params: serde_json::Value::Object(params),
                }
            })
            .collect())
    }

    /// Whether `collection` is loaded (fully).
    ///
    /// # Errors
    /// RPC failures.
    pub async fn is_loaded(&self, collection: &str) -> Result<bool> {
        let s = answer(
            "GetLoadState",
            "GetLoadState",
            self.grpc
                .clone()
                .get_load_state(GetLoadStateRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    ..Default::default()
                })
                .await,
        )?;
        Ok(s.state == LoadState::Loaded as i32)
    }

    /// Releases `collection` from memory.
    ///
    /// # Errors
    /// RPC failures.
    pub async fn release(&self, collection: &str) -> Result<()> {
        answer(
            "ReleaseCollection",
            &format!("releasing `{collection}`"),
            self.grpc
                .clone()
                .release_collection(ReleaseCollectionRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    ..Default::default()
                })
                .await,
        )
        .map(drop)
    }

    /// Creates a collection.
    ///
    /// # Errors
    /// RPC failures with the server's reason.
    pub async fn create_collection(
        &self,
        schema: &CollectionSchema,
        shards: i32,
        consistency: Consistency,
    ) -> Result<()> {
        self.create_collection_with(schema, shards, consistency, 0)
            .await
    }

    /// As [`MilvusClient::create_collection`], with `num_partitions` (for a partition-key
    /// collection; 0: the server's default). The schema's `properties` are sent as the
    /// collection's properties.
    ///
    /// # Errors
    /// RPC failures with the server's reason.
    pub async fn create_collection_with(
        &self,
        schema: &CollectionSchema,
        shards: i32,
        consistency: Consistency,
        num_partitions: i64,
    ) -> Result<()> {
        answer(
            "CreateCollection",
            &format!("creating collection `{}`", schema.name),
            self.grpc
                .clone()
                .create_collection(CreateCollectionRequest {
                    db_name: self.db.clone(),
                    collection_name: schema.name.clone(),
                    schema: schema.encode_to_vec(),
                    shards_num: shards,
                    consistency_level: consistency as i32,
                    num_partitions,
                    properties: schema.properties.clone(),
                    ..Default::default()
                })
                .await,
        )
        .map(drop)
    }

    /// Drops `collection` (and all its data).
    ///
    /// # Errors
    /// RPC failures.
    pub async fn drop_collection(&self, collection: &str) -> Result<()> {
        answer(
            "DropCollection",
            &format!("dropping collection `{collection}`"),
            self.grpc
                .clone()
                .drop_collection(DropCollectionRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    ..Default::default()
                })
                .await,
        )
        .map(drop)
    }

    /// Renames `from` to `to` in this client's database (Milvus 2.2.9+); indexes go along.
    ///
    /// # Errors
    /// RPC failures, e.g. when `to` exists.
    pub async fn rename_collection(&self, from: &str, to: &str) -> Result<()> {
        answer(
            "RenameCollection",
            &format!("renaming collection `{from}` to `{to}`"),
            self.grpc
                .clone()
                .rename_collection(RenameCollectionRequest {
                    db_name: self.db.clone(),
                    old_name: from.to_string(),
                    new_name: to.to_string(),
                    new_db_name: self.db.clone(),
                    ..Default::default()
                })
                .await,
        )
        .map(drop)
    }

    /// Whether `partition` exists in `collection`.
    ///
    /// # Errors
    /// RPC failures.
    pub async fn has_partition(&self, collection: &str, partition: &str) -> Result<bool> {
        let r = answer(
            "HasPartition",
            "HasPartition",
            self.grpc
                .clone()
                .has_partition(HasPartitionRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    partition_name: partition.to_string(),
                    ..Default::default()
                })
                .await,
        )?;
        Ok(r.value)
    }

    /// Creates `partition` in `collection`.
    ///
    /// # Errors
    /// RPC failures.
    pub async fn create_partition(&self, collection: &str, partition: &str) -> Result<()> {
        answer(
            "CreatePartition",
            &format!("creating partition `{partition}`"),
            self.grpc
                .clone()
                .create_partition(CreatePartitionRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    partition_name: partition.to_string(),
                    ..Default::default()
                })
                .await,
        )
        .map(drop)
    }

    /// Inserts (or, with `upsert`, upserts) every row of `batch`, whose column names are the
    /// collection's field names; returns the rows the server acknowledged.
    ///
    /// # Errors
    /// [`Error::Data`]/[`Error::Unsupported`] from the conversion; RPC failures, where a
    /// request too large for the server or client is a [`MilvusError`] of kind
    /// [`MilvusErrorKind::TooLarge`] (see [`crate::error::is_too_large`]).
    pub async fn insert(
        &self,
        collection: &str,
        partition: Option<&str>,
        batch: &RecordBatch,
        upsert: bool,
    ) -> Result<u64> {
        let fields_data = convert::batch_to_field_data(batch)?;
        self.insert_fields(collection, partition, fields_data, batch.num_rows(), upsert)
            .await
    }

    /// As [`MilvusClient::insert`], from already converted columns.
    ///
    /// # Errors
    /// As [`MilvusClient::insert`].
    pub async fn insert_fields(
        &self,
        collection: &str,
        partition: Option<&str>,
        fields_data: Vec<FieldData>,
        num_rows: usize,
        upsert: bool,
    ) -> Result<u64> {
        let num_rows = u32::try_from(num_rows).map_err(|_| {
            Error::data(collection.to_string(), "more than 2^32 rows in one request")
        })?;
        let partition_name = partition.unwrap_or_default().to_string();
        // Checked here: tonic's own limit surfaces as an opaque HTTP/2 reset.
        let too_large = |what: &str, len: usize| {
            Error::External(Box::new(MilvusError::new(
                MilvusErrorKind::TooLarge,
                what,
                format!(
                    "request of {len} bytes ({num_rows} rows) is larger than the {} byte limit",
                    self.max_request_bytes
                ),
            )))
        };
        let (what, result) = if upsert {
            let req = UpsertRequest {
                db_name: self.db.clone(),
                collection_name: collection.to_string(),
                partition_name,
                fields_data,
                num_rows,
                ..Default::default()
            };
            if req.encoded_len() > self.max_request_bytes {
                return Err(too_large("Upsert", req.encoded_len()));
            }
            ("Upsert", self.grpc.clone().upsert(req).await)
        } else {
            let req = InsertRequest {
                db_name: self.db.clone(),
                collection_name: collection.to_string(),
                partition_name,
                fields_data,
                num_rows,
                ..Default::default()
            };
            if req.encoded_len() > self.max_request_bytes {
                return Err(too_large("Insert", req.encoded_len()));
            }
            ("Insert", self.grpc.clone().insert(req).await)
        };
        let r = answer(
            what,
            &format!("{what} of {num_rows} rows into `{collection}`"),
            result,
        )?;
        if !r.err_index.is_empty() {
            return Err(Error::External(Box::new(MilvusError::new(
                MilvusErrorKind::Server,
                what,
                format!(
                    "{} of {num_rows} rows were rejected (first at request row {})",
                    r.err_index.len(),
                    r.err_index[0]
                ),
            ))));
        }
        Ok(if upsert {
            r.upsert_cnt.max(0) as u64
        } else {
            r.insert_cnt.max(0) as u64
        })
    }

    /// Deletes the rows matching `expr` (on 2.3: `pk in [...]`); returns the count the server
    /// reports.
    ///
    /// # Errors
    /// RPC failures with the server's reason.
    pub async fn delete(
        &self,
        collection: &str,
        partition: Option<&str>,
        expr: &str,
    ) -> Result<u64> {
        let r = answer(
            "Delete",
            &format!("deleting from `{collection}`"),
            self.grpc
                .clone()
                .delete(DeleteRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    partition_name: partition.unwrap_or_default().to_string(),
                    expr: expr.to_string(),
                    ..Default::default()
                })
                .await,
        )?;
        Ok(r.delete_cnt.max(0) as u64)
    }

    /// Seals and persists everything inserted into `collection`, waiting (up to `wait`) until
    /// the server reports it flushed.
    ///
    /// # Errors
    /// RPC failures; [`Error::Transient`] when the flush does not finish within `wait`.
    pub async fn flush(&self, collection: &str, wait: Duration) -> Result<()> {
        let r = answer(
            "Flush",
            &format!("flushing `{collection}`"),
            self.grpc
                .clone()
                .flush(FlushRequest {
                    db_name: self.db.clone(),
                    collection_names: vec![collection.to_string()],
                    ..Default::default()
                })
                .await,
        )?;
        let segments = r
            .coll_seg_i_ds
            .get(collection)
            .map(|l| l.data.clone())
            .unwrap_or_default();
        let flush_ts = r.coll_flush_ts.get(collection).copied().unwrap_or(0);
        let start = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let s = answer(
                "GetFlushState",
                "GetFlushState",
                self.grpc
                    .clone()
                    .get_flush_state(GetFlushStateRequest {
                        segment_i_ds: segments.clone(),
                        flush_ts,
                        db_name: self.db.clone(),
                        collection_name: collection.to_string(),
                    })
                    .await,
            )?;
            if s.flushed {
                return Ok(());
            }
            if start.elapsed() > wait {
                return Err(Error::Transient {
                    message: format!("`{collection}` was not flushed within {wait:?}"),
                    source: None,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Creates an index on `field` (`index_type` e.g. `IVF_FLAT`, `metric` e.g. `L2`, `params`
    /// a JSON object such as `{"nlist": 128}`).
    ///
    /// # Errors
    /// RPC failures with the server's reason.
    pub async fn create_index(
        &self,
        collection: &str,
        field: &str,
        index_type: &str,
        metric: &str,
        params: &serde_json::Value,
    ) -> Result<()> {
        let mut extra = vec![pair("index_type", index_type), pair("metric_type", metric)];
        if !params.is_null() {
            extra.push(pair("params", params.to_string()));
        }
        answer(
            "CreateIndex",
            &format!("creating a {index_type} index on `{collection}`.`{field}`"),
            self.grpc
                .clone()
                .create_index(CreateIndexRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    field_name: field.to_string(),
                    extra_params: extra,
                    ..Default::default()
                })
                .await,
        )
        .map(drop)
    }

    /// Loads `collection` and waits (up to `wait`) until it is loaded.
    ///
    /// # Errors
    /// RPC failures; [`Error::Transient`] on timeout.
    pub async fn load(&self, collection: &str, wait: Duration) -> Result<()> {
        answer(
            "LoadCollection",
            &format!("loading `{collection}`"),
            self.grpc
                .clone()
                .load_collection(LoadCollectionRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    replica_number: 1,
                    ..Default::default()
                })
                .await,
        )?;
        let start = Instant::now();
        loop {
            if self.is_loaded(collection).await? {
                return Ok(());
            }
            if start.elapsed() > wait {
                return Err(Error::Transient {
                    message: format!("`{collection}` was not loaded within {wait:?}"),
                    source: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a query and returns the raw reply.
    ///
    /// `limit = None` sends no limit (then `expr` must not be empty, and every match comes back
    /// in one reply). The collection must be loaded.
    ///
    /// # Errors
    /// RPC failures with the server's reason.
    pub async fn query_raw(
        &self,
        collection: &str,
        expr: &str,
        output_fields: &[String],
        limit: Option<usize>,
        consistency: Consistency,
        extra_params: Vec<KeyValuePair>,
    ) -> Result<QueryResults> {
        self.query_in(
            collection,
            &[],
            expr,
            output_fields,
            limit,
            consistency,
            extra_params,
        )
        .await
    }

    /// As [`MilvusClient::query_raw`], restricted to `partitions` (all when empty).
    ///
    /// # Errors
    /// RPC failures with the server's reason.
    #[allow(clippy::too_many_arguments)]
    pub async fn query_in(
        &self,
        collection: &str,
        partitions: &[String],
        expr: &str,
        output_fields: &[String],
        limit: Option<usize>,
        consistency: Consistency,
        extra_params: Vec<KeyValuePair>,
    ) -> Result<QueryResults> {
        let mut query_params = extra_params;
        if let Some(l) = limit {
            query_params.push(pair("limit", l));
        }
        self.send_query(QueryRequest {
            db_name: self.db.clone(),
            collection_name: collection.to_string(),
            expr: expr.to_string(),
            output_fields: output_fields.to_vec(),
            partition_names: partitions.to_vec(),
            query_params,
            consistency_level: consistency as i32,
            ..Default::default()
        })
        .await
    }

    async fn send_query(&self, req: QueryRequest) -> Result<QueryResults> {
        let (collection, expr) = (req.collection_name.clone(), req.expr.clone());
        answer(
            "Query",
            &format!("querying `{collection}` ({expr:?})"),
            self.grpc.clone().query(req).await,
        )
    }

    /// Runs a query and decodes the reply into a batch of `schema` (its fields are the output
    /// fields; use [`CollectionInfo::arrow`] or a projection of it).
    ///
    /// # Errors
    /// As [`MilvusClient::query_raw`]; [`Error::Data`] when the reply does not decode.
    pub async fn query(
        &self,
        collection: &str,
        expr: &str,
        schema: &SchemaRef,
        limit: Option<usize>,
        consistency: Consistency,
    ) -> Result<RecordBatch> {
        let fields: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let r = self
            .query_raw(collection, expr, &fields, limit, consistency, Vec::new())
            .await?;
        convert::field_data_to_batch(schema, &r.fields_data)
    }

    /// Exact row count: `count(*)` with Strong consistency (counts only live rows, unlike the
    /// collection statistics). The collection must be loaded.
    ///
    /// # Errors
    /// RPC failures; [`Error::Data`] when the reply holds no count.
    pub async fn count(&self, collection: &str) -> Result<u64> {
        self.count_in(collection, &[]).await
    }

    /// As [`MilvusClient::count`], counting only the rows in `partitions` (all when empty).
    ///
    /// # Errors
    /// As [`MilvusClient::count`].
    pub async fn count_in(&self, collection: &str, partitions: &[String]) -> Result<u64> {
        let r = self
            .query_in(
                collection,
                partitions,
                "",
                &["count(*)".to_string()],
                None,
                ConsistencyLevel::Strong,
                Vec::new(),
            )
            .await?;
        r.fields_data
            .iter()
            .find_map(|f| match &f.field {
                Some(milvus::proto::schema::field_data::Field::Scalars(s)) => match &s.data {
                    Some(scalar_field::Data::LongData(l)) => l.data.first().copied(),
                    _ => None,
                },
                _ => None,
            })
            .map(|n| n.max(0) as u64)
            .ok_or_else(|| {
                Error::data(
                    format!("count(*) of `{collection}`"),
                    "no count in the reply",
                )
            })
    }

    /// One page of PK keyset paging: the (at most) `limit` rows with the smallest primary keys
    /// above `after` (all rows when `None`), in primary-key order, with `schema`'s fields (which
    /// must include `pk_field`). Use the last row's key as the next `after`; an empty batch ends
    /// the scan. `limit` must be within the 16384 query window. Reads with Strong consistency.
    ///
    /// # Errors
    /// As [`MilvusClient::query_keyset`].
    pub async fn query_page(
        &self,
        collection: &str,
        pk_field: &str,
        after: Option<&PkValue>,
        limit: usize,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let q = KeysetQuery {
            collection,
            partitions: &[],
            pk_field,
            filter: "",
            after,
            limit,
            schema,
            snapshot_ts: 0,
        };
        Ok(self.query_keyset(&q).await?.0)
    }

    /// One page of PK keyset paging with partitions, a filter and a snapshot timestamp (see
    /// [`KeysetQuery`]); returns the page and the server's `session_ts` (0 when the server
    /// does not report one, as 2.3 does not).
    ///
    /// Sends the iterator parameters the official SDKs send (`iterator`, `reduce_stop_for_best`)
    /// and checks that the page is strictly increasing and above `after`, failing loudly if the
    /// server does not keep that promise.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad `limit`; RPC failures; [`Error::Data`] when the page is not
    /// strictly increasing or the key column is not Int64/Utf8.
    pub async fn query_keyset(&self, q: &KeysetQuery<'_>) -> Result<(RecordBatch, u64)> {
        let (collection, pk_field, limit, schema) = (q.collection, q.pk_field, q.limit, q.schema);
        if limit == 0 || limit > MAX_QUERY_WINDOW {
            return Err(Error::config(
                "milvus",
                format!("query page size {limit} must be in 1..={MAX_QUERY_WINDOW}"),
            ));
        }
        let pk_type = schema
            .field_with_name(pk_field)
            .map_err(|_| {
                Error::schema(format!(
                    "output fields must include the primary key `{pk_field}`"
                ))
            })?
            .data_type()
            .clone();
        if !matches!(pk_type, DataType::Int64 | DataType::Utf8) {
            return Err(Error::schema(format!(
                "primary key `{pk_field}` is {pk_type}; only Int64 and VarChar keys can be paged"
            )));
        }
        // The first page has no key bound (an empty expression is allowed with a limit, and
        // `pk >= i64::MIN` does not parse on 2.3.5).
        let bound = q.after.map(|v| v.expr(pk_field, ">"));
        let filter = q.filter.trim();
        let expr = match (bound, filter.is_empty()) {
            (None, _) => filter.to_string(),
            (Some(b), true) => b,
            (Some(b), false) => format!("({b}) and ({filter})"),
        };
        let fields: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let (consistency, guarantee_timestamp) = if q.snapshot_ts == 0 {
            (ConsistencyLevel::Strong, 0)
        } else {
            (ConsistencyLevel::Customized, q.snapshot_ts)
        };
        let r = self
            .send_query(QueryRequest {
                db_name: self.db.clone(),
                collection_name: collection.to_string(),
                expr,
                output_fields: fields,
                partition_names: q.partitions.to_vec(),
                query_params: vec![
                    pair("iterator", "True"),
                    pair("reduce_stop_for_best", "True"),
                    pair("limit", limit),
                ],
                consistency_level: consistency as i32,
                guarantee_timestamp,
                ..Default::default()
            })
            .await?;
        let batch = convert::field_data_to_batch(schema, &r.fields_data)?;
        let keys = pk_values(&batch, pk_field)?;
        let mut prev = q.after.cloned();
        for (row, k) in keys.into_iter().enumerate() {
            if let Some(p) = &prev {
                if &k <= p {
                    return Err(Error::data(
                        format!("query page of `{collection}` row {row}"),
                        format!("primary key {k:?} is not above {p:?}: the server did not return keys in order; keyset paging is unsafe on this server"),
                    ));
                }
            }
            prev = Some(k);
        }
        Ok((batch, r.session_ts))
    }

    /// Submits a 2.3-style bulk import (gRPC `Import`) of `files` (bucket-relative paths, or
    /// absolute paths for a server on local storage) and returns the task ids. Milvus 2.3 takes
    /// one JSON or Parquet file, or one set of `.npy` files, per call.
    ///
    /// # Errors
    /// RPC failures with the server's reason.
    pub async fn import(
        &self,
        collection: &str,
        partition: Option<&str>,
        files: &[String],
    ) -> Result<Vec<i64>> {
        let r = answer(
            "Import",
            &format!("importing {} into `{collection}`", files.join(", ")),
            self.grpc
                .clone()
                .import(ImportRequest {
                    db_name: self.db.clone(),
                    collection_name: collection.to_string(),
                    partition_name: partition.unwrap_or_default().to_string(),
                    files: files.to_vec(),
                    ..Default::default()
                })
                .await,
        )?;
        Ok(r.tasks)
    }

    /// The state of one import task.
    ///
    /// # Errors
    /// RPC failures.
    pub async fn import_state(&self, task: i64) -> Result<ImportTaskState> {
        let r = answer(
            "GetImportState",
            "GetImportState",
            self.grpc
                .clone()
                .get_import_state(GetImportStateRequest { task })
                .await,
        )?;
        Ok(task_state(task, &r))
    }

    /// Every import task Milvus still knows for `collection` (it keeps finished tasks for
    /// `rootCoord.importTaskRetention`, 24 hours by default), oldest first, with the files each
    /// was given — how a resumed run finds an import an interrupted run submitted.
    ///
    /// # Errors
    /// RPC failures.
    pub async fn list_import_tasks(&self, collection: &str) -> Result<Vec<ImportTaskState>> {
        let r = answer(
            "ListImportTasks",
            &format!("listing the import tasks of `{collection}`"),
            self.grpc
                .clone()
                .list_import_tasks(ListImportTasksRequest {
                    collection_name: collection.to_string(),
                    limit: 0,
                    db_name: self.db.clone(),
                })
                .await,
        )?;
        Ok(r.tasks.iter().map(|t| task_state(t.id, t)).collect())
    }

    /// Polls `tasks` until every one is Completed (returns the imported row count) or one
    /// failed (error with the server's `failed_reason`), at most `wait`.
    ///
    /// # Errors
    /// [`Error::External`] ([`MilvusErrorKind::Server`]) naming the task and reason;
    /// [`Error::Transient`] on timeout.
    pub async fn wait_import(&self, tasks: &[i64], wait: Duration) -> Result<u64> {
        match poll_imports(tasks, wait, |t| self.import_state(t)).await? {
            ImportOutcome::Completed(rows) => Ok(rows),
            ImportOutcome::Failed { task, reason } => {
                Err(Error::External(Box::new(MilvusError::new(
                    MilvusErrorKind::Server,
                    "Import",
                    format!("import task {task} failed: {reason}"),
                ))))
            }
        }
    }
}

/// How a set of import tasks ended ([`poll_imports`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Every task completed; the rows they imported.
    Completed(u64),
    /// A task failed (an import is atomic per task: it left no rows), with the server's reason.
    Failed {
        /// The failed task.
        task: i64,
        /// Its `failed_reason` ("no reason given" when the server gave none).
        reason: String,
    },
}

/// Whether an import task in `state` has failed.
pub fn import_failed(state: ImportState) -> bool {
    matches!(
        state,
        ImportState::ImportFailed | ImportState::ImportFailedAndCleaned
    )
}

/// Polls `tasks` with `state` (one `GetImportState` each, retried by the caller if it likes)
/// until every one completed or one failed, at most `wait`, backing off from 100 ms to 1 s.
///
/// # Errors
/// An error of `state`; [`Error::Transient`] when tasks are not finished within `wait`.
pub async fn poll_imports<F, Fut>(tasks: &[i64], wait: Duration, state: F) -> Result<ImportOutcome>
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = Result<ImportTaskState>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut rows = 0u64;
    let mut pending: Vec<i64> = tasks.to_vec();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for &t in &pending {
            let s = state(t).await?;
            match s.state {
                ImportState::ImportCompleted => rows += s.row_count.max(0) as u64,
                failed if import_failed(failed) => {
                    return Ok(ImportOutcome::Failed {
                        task: t,
                        reason: s
                            .failed_reason
                            .unwrap_or_else(|| "no reason given".to_string()),
                    })
                }
                _ => still.push(t),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if start.elapsed() > wait {
            return Err(Error::Transient {
                message: format!("import tasks {pending:?} not finished within {wait:?}"),
                source: None,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
    Ok(ImportOutcome::Completed(rows))
}

/// One task's state from a `GetImportState` answer (or an entry of `ListImportTasks`).
fn task_state(task: i64, r: &GetImportStateResponse) -> ImportTaskState {
    let info = |key: &str| {
        r.infos
            .iter()
            .find(|kv| kv.key == key && !kv.value.is_empty())
            .map(|kv| kv.value.clone())
    };
    ImportTaskState {
        task,
        state: ImportState::try_from(r.state).unwrap_or(ImportState::ImportPending),
        row_count: r.row_count,
        failed_reason: info("failed_reason"),
        files: info("files").unwrap_or_default(),
    }
}

/// The primary keys of a batch's `pk_field` column.
///
/// # Errors
/// [`Error::Data`] when the column is missing or not Int64/Utf8.
pub fn pk_values(batch: &RecordBatch, pk_field: &str) -> Result<Vec<PkValue>> {
    let col = batch
        .column_by_name(pk_field)
        .ok_or_else(|| Error::schema(format!("no primary key column `{pk_field}`")))?;
    if let Some(a) = col.as_primitive_opt::<Int64Type>() {
        return Ok(a.values().iter().map(|&v| PkValue::Int(v)).collect());
    }
    if let Some(a) = col.as_string_opt::<i32>() {
        return Ok((0..a.len())
            .map(|i| PkValue::Str(a.value(i).to_string()))
            .collect());
    }
    Err(Error::schema(format!(
        "primary key `{pk_field}` is {}; only Int64 and VarChar keys can be paged",
        col.data_type()
    )))
}

fn transport_detail(e: &tonic::transport::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

fn explain_connect_error(e: Error, opts: &ConnectOptions, uri: &str) -> Error {
    match crate::error::kind(&e) {
        Some(MilvusErrorKind::Auth) => {
            let who = match (&opts.token, &opts.user) {
                (Some(t), _) if !t.is_empty() => "the token".to_string(),
                (_, Some(u)) if !u.is_empty() => format!("the credentials for user `{u}`"),
                _ if opts.uri_credentials().is_some() => {
                    "the credentials written in `uri`".to_string()
                }
                _ => "the connection without credentials (set `user`/`password` or `token`)"
                    .to_string(),
            };
            Error::External(Box::new(MilvusError::new(
                MilvusErrorKind::Auth,
                "connect",
                format!(
                    "Milvus at {uri} rejected {who}: check the user name and password (or token)"
                ),
            )))
        }
        _ if e.is_retryable() => Error::Transient {
            message: format!("cannot reach Milvus at {uri}: {e} — is it running?"),
            source: None,
        },
        _ => e.context(format!("connecting to Milvus at {uri}")),
    }
}
