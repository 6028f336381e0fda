//! The catalog as the schema: which Arrow column each PostgreSQL column becomes, how it is
//! selected, which key the rows are paged by, and the metric of a vector index.
//!
//! | PostgreSQL                         | Arrow / Milvus                                         |
//! |------------------------------------|--------------------------------------------------------|
//! | `vector(n)`                        | FloatVector(n)                                         |
//! | `halfvec(n)`                       | Float16Vector(n) (`halfvec = "float32"`: FloatVector)  |
//! | `sparsevec`                        | SparseFloatVector                                      |
//! | `bit(n)` (n a multiple of 8)       | BinaryVector(n)                                        |
//! | `bool`, `int2`, `int4`, `int8`     | Bool, Int16, Int32, Int64                              |
//! | `float4`, `float8`                 | Float, Double                                          |
//! | `numeric`                          | Double (`numeric = "string"`: VarChar)                 |
//! | `text`, `varchar(n)`, `char(n)`, `name` | VarChar (`vmig.max_length` = n when declared)    |
//! | `uuid`                             | VarChar (max_length 36)                                |
//! | `json`, `jsonb`                    | JSON                                                   |
//! | `timestamp`, `timestamptz`, `date` | Int64 epoch microseconds (`timestamps = "string"`: VarChar) |
//! | one-dimensional arrays of bool, int2/4/8, float4/8, text, varchar | Array of the element type |
//!
//! Vector columns are non-nullable (a NULL vector is an error naming the row); every other column
//! is nullable unless declared `NOT NULL` (in a `query`, always nullable). A vector column with
//! no declared dimension takes the dimension of its first non-null value.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sqlx::postgres::PgConnection;
use sqlx::{Column as _, Executor};
use vmig_core::vector::{
    binary_vector_field, float16_vector_field, float_vector_field, json_field,
    sparse_float_vector_field, META_METRIC, META_PRIMARY_KEY,
};
use vmig_core::{Error, Result};

use crate::source::pg_error;
use crate::{HalfvecMode, NumericMode, OnUnknownType, PgvectorSourceConfig, TimeMode, PLUGIN};

/// Field metadata key of a VarChar's `max_length` (the same key `vmig_milvus::meta` reads).
pub const META_MAX_LENGTH: &str = "vmig.max_length";

/// How a column's binary values are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `bool`.
    Bool,
    /// `int2`.
    Int16,
    /// `int4`.
    Int32,
    /// `int8`.
    Int64,
    /// `float4`.
    Float32,
    /// `float8`, `numeric::float8`.
    Float64,
    /// Text (also uuid, numeric and times selected as text).
    Text,
    /// `json`/`jsonb` selected as text.
    Json,
    /// `timestamp`/`timestamptz` → epoch microseconds.
    TimeMicros,
    /// `date` → epoch microseconds.
    DateMicros,
    /// `vector`.
    Vector,
    /// `halfvec` as Float16Vector.
    HalfVec,
    /// `halfvec::vector` as FloatVector.
    HalfAsFloat32,
    /// `sparsevec`.
    Sparse,
    /// `bit(n)`.
    Bit,
    /// A one-dimensional array of scalars.
    Array(Elem),
}

/// The element type of an array column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// `bool[]`.
    Bool,
    /// `int2[]`.
    Int16,
    /// `int4[]`.
    Int32,
    /// `int8[]`.
    Int64,
    /// `float4[]`.
    Float32,
    /// `float8[]`.
    Float64,
    /// `text[]`, `varchar[]`.
    Text,
}

/// One column read from PostgreSQL.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name (also the Arrow field name).
    pub name: String,
    /// Its PostgreSQL type as `format_type` prints it (`vector(3)`).
    pub pg_type: String,
    /// How its values are decoded.
    pub kind: ColumnKind,
    /// A dense vector's dimension (bits for `bit`); 0 otherwise.
    pub dim: usize,
    /// The select-list expression (the quoted name, maybe with a cast).
    pub select: String,
    /// The Arrow field.
    pub field: Field,
}

/// What the rows are paged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// An integer column (`int2`/`int4`/`int8`): key ranges, read in parallel.
    Int(String),
    /// A text or varchar column.
    Text(String),
    /// A uuid column.
    Uuid(String),
    /// The physical row address: block ranges; exact only without concurrent writes.
    Ctid,
}

impl Key {
    /// The key column's name (`ctid` for [`Key::Ctid`]).
    pub fn name(&self) -> &str {
        match self {
            Key::Int(n) | Key::Text(n) | Key::Uuid(n) => n,
            Key::Ctid => "ctid",
        }
    }
}

/// Everything learnt from the catalog.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The SQL `FROM` item: a quoted `"schema"."table"` or `(query) AS "vmig_q"`.
    pub from: String,
    /// For messages: `table "public"."items"` or `the query`.
    pub what: String,
    /// The table's oid (table form).
    pub table_oid: Option<i64>,
    /// The columns read, in order.
    pub columns: Vec<Column>,
    /// The paging key.
    pub key: Key,
    /// The Arrow schema (with `vmig.metric` and `vmig.primary_key` when known).
    pub schema: SchemaRef,
}

/// `ident` quoted as an SQL identifier.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A column as the server describes it.
#[derive(Debug, Clone)]
struct Described {
    name: String,
    oid: Option<i64>,
    rel: Option<(i64, i16)>,
}

async fn describe(conn: &mut PgConnection, sql: &str, server: &str) -> Result<Vec<Described>> {
    let d = conn
        .describe(sql)
        .await
        .map_err(|e| pg_error(e, server, "describing the columns"))?;
    Ok(d.columns()
        .iter()
        .map(|c| Described {
            name: c.name().to_string(),
            oid: c.type_info().oid().map(|o| i64::from(o.0)),
            rel: c
                .relation_id()
                .zip(c.relation_attribute_no())
                .map(|(r, a)| (i64::from(r.0), a)),
        })
        .collect())
}

/// Type name, element type name and `format_type` of type `oid` with modifier `typmod`.
async fn type_names(
    conn: &mut PgConnection,
    oid: i64,
    typmod: i32,
    server: &str,
) -> Result<(String, String, String)> {
    sqlx::query_as(
        "SELECT t.typname::text, coalesce(e.typname::text, ''), format_type(t.oid, $2) \
         FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
         WHERE t.oid = $1::int8::oid",
    )
    .bind(oid)
    .bind(typmod)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| pg_error(e, server, "reading the column types"))
}

/// Learns the plan of `config` from the catalog.
///
/// # Errors
/// A missing table, an unknown column type (unless skipped), a key vmig cannot page by.
pub async fn plan(
    conn: &mut PgConnection,
    config: &PgvectorSourceConfig,
    server: &str,
) -> Result<Plan> {
    let (from, what, table_oid, relkind) = match (&config.table, &config.query) {
        (Some(table), _) => {
            let row: Option<(i64, String, String, String)> = sqlx::query_as(
                "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
                 AND CASE WHEN $2::text IS NULL THEN pg_table_is_visible(c.oid) \
                     ELSE n.nspname = $2 END",
            )
            .bind(table)
            .bind(config.schema.as_deref())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| pg_error(e, server, "looking up the table"))?;
            let Some((oid, nsp, rel, kind)) = row else {
                return Err(Error::config(
                    PLUGIN,
                    format!(
                        "PostgreSQL at {server} has no table or view `{table}`{} (names are case-sensitive, as if quoted)",
                        config
                            .schema
                            .as_ref()
                            .map_or(" on its search_path".to_string(), |s| format!(" in schema `{s}`"))
                    ),
                ));
            };
            let from = format!("{}.{}", quote_ident(&nsp), quote_ident(&rel));
            (from.clone(), format!("table {from}"), Some(oid), kind)
        }
        (None, Some(q)) => (
            format!("({q}) AS \"vmig_q\""),
            "the query".to_string(),
            None,
            String::new(),
        ),
        (None, None) => return Err(Error::config(PLUGIN, "give `table` or `query`")),
    };
    let select = match &config.columns {
        Some(cols) => cols
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        None => "*".to_string(),
    };
    let described = describe(
        conn,
        &format!("SELECT {select} FROM {from} LIMIT 0"),
        server,
    )
    .await?;

    let mut columns = Vec::new();
    let mut metric: Option<String> = None;
    for d in &described {
        let oid = d.oid.ok_or_else(|| {
            Error::unsupported(
                format!("column `{}` of {what}", d.name),
                "the server did not say its type",
            )
        })?;
        let (typmod, notnull) = match (d.rel, table_oid) {
            (Some((rel, att)), _) if att > 0 => {
                let r: Option<(i32, bool)> = sqlx::query_as(
                    "SELECT atttypmod, attnotnull FROM pg_attribute \
                     WHERE attrelid = $1::int8::oid AND attnum = $2",
                )
                .bind(rel)
                .bind(att)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| pg_error(e, server, "reading the column types"))?;
                let (m, nn) = r.unwrap_or((-1, false));
                (m, nn && table_oid.is_some())
            }
            _ => (-1, false),
        };
        let (typname, elem, pg_type) = type_names(conn, oid, typmod, server).await?;
        let Some(mut col) = classify(&d.name, &typname, &elem, &pg_type, typmod, !notnull, config)?
        else {
            let location = format!("column `{}` of {what}", d.name);
            let why = format!(
                "PostgreSQL type {pg_type} has no Milvus equivalent in vmig (it reads vector, halfvec, sparsevec, bit(n), bool, integers, real/double, numeric, text/varchar/char, uuid, json/jsonb, timestamp[tz], date and one-dimensional arrays of bool, integers, real/double and text); leave it out with `columns`, convert it in a `query`, or set `on_unknown_type = \"skip\"`"
            );
            match config.on_unknown_type {
                OnUnknownType::Error => return Err(Error::unsupported(location, why)),
                OnUnknownType::Skip => {
                    tracing::warn!("pgvector: skipping {location}: type {pg_type}");
                    continue;
                }
            }
        };
        if col.dim == 0
            && matches!(
                col.kind,
                ColumnKind::Vector
                    | ColumnKind::HalfVec
                    | ColumnKind::HalfAsFloat32
                    | ColumnKind::Bit
            )
        {
            col = with_probed_dim(conn, col, &from, &what, server).await?;
        }
        if metric.is_none()
            && col
                .field
                .metadata()
                .contains_key(vmig_core::vector::META_TYPE)
        {
            if let Some((rel, att)) = d.rel {
                metric = index_metric(conn, rel, att, server).await?;
            }
        }
        columns.push(col);
    }
    if columns.is_empty() {
        return Err(Error::config(
            PLUGIN,
            format!("{what} has no column vmig can read"),
        ));
    }

    let key = resolve_key(
        conn, config, &from, &what, table_oid, &relkind, &described, server,
    )
    .await?;
    let mut meta = HashMap::new();
    if let Some(m) = metric {
        meta.insert(META_METRIC.to_string(), m);
    }
    if key != Key::Ctid && columns.iter().any(|c| c.name == key.name()) {
        meta.insert(META_PRIMARY_KEY.to_string(), key.name().to_string());
    }
    let schema = Arc::new(Schema::new_with_metadata(
        columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
        meta,
    ));
    Ok(Plan {
        from,
        what,
        table_oid,
        columns,
        key,
        schema,
    })
}

/// The column for one PostgreSQL type, or `None` when vmig cannot read it.
///
/// # Errors
/// A `bit(n)` whose n is not a multiple of 8.
pub fn classify(
    name: &str,
    typname: &str,
    elem: &str,
    pg_type: &str,
    typmod: i32,
    nullable: bool,
    config: &PgvectorSourceConfig,
) -> Result<Option<Column>> {
    let q = quote_ident(name);
    let dim = usize::try_from(typmod).unwrap_or(0);
    let text_len = |m: i32| usize::try_from(m - 4).ok().filter(|n| *n > 0);
    let plain = |kind, dt: DataType| {
        Some(Column {
            name: name.to_string(),
            pg_type: pg_type.to_string(),
            kind,
            dim: 0,
            select: q.clone(),
            field: Field::new(name, dt, nullable),
        })
    };
    let varchar = |select: String, max: Option<usize>| {
        let mut field = Field::new(name, DataType::Utf8, nullable);
        if let Some(n) = max {
            field = field.with_metadata(HashMap::from([(
                META_MAX_LENGTH.to_string(),
                n.to_string(),
            )]));
        }
        Some(Column {
            name: name.to_string(),
            pg_type: pg_type.to_string(),
            kind: ColumnKind::Text,
            dim: 0,
            select,
            field,
        })
    };
    let vector = |kind, dim: usize, select: String, field: Field| {
        Some(Column {
            name: name.to_string(),
            pg_type: pg_type.to_string(),
            kind,
            dim,
            select,
            field,
        })
    };
    let list = |e: Elem, dt: DataType| {
        Some(Column {
            name: name.to_string(),
            pg_type: pg_type.to_string(),
            kind: ColumnKind::Array(e),
            dim: 0,
            select: q.clone(),
            field: Field::new(
                name,
                DataType::List(Arc::new(Field::new_list_field(dt, true))),
                nullable,
            ),
        })
    };
    Ok(match typname {
        "bool" => plain(ColumnKind::Bool, DataType::Boolean),
        "int2" => plain(ColumnKind::Int16, DataType::Int16),
        "int4" => plain(ColumnKind::Int32, DataType::Int32),
        "int8" => plain(ColumnKind::Int64, DataType::Int64),
        "float4" => plain(ColumnKind::Float32, DataType::Float32),
        "float8" => plain(ColumnKind::Float64, DataType::Float64),
        "numeric" => match config.numeric {
            NumericMode::Double => plain(ColumnKind::Float64, DataType::Float64).map(|c| Column {
                select: format!("{q}::float8"),
                ..c
            }),
            NumericMode::String => varchar(format!("{q}::text"), None),
        },
        "text" | "name" => varchar(q.clone(), None),
        "varchar" | "bpchar" => varchar(q.clone(), text_len(typmod)),
        "uuid" => varchar(format!("{q}::text"), Some(36)),
        "json" | "jsonb" => Some(Column {
            name: name.to_string(),
            pg_type: pg_type.to_string(),
            kind: ColumnKind::Json,
            dim: 0,
            select: format!("{q}::text"),
            field: json_field(name, nullable),
        }),
        "timestamp" | "timestamptz" | "date" => match config.timestamps {
            TimeMode::EpochMicros => plain(
                if typname == "date" {
                    ColumnKind::DateMicros
                } else {
                    ColumnKind::TimeMicros
                },
                DataType::Int64,
            ),
            TimeMode::String => varchar(format!("{q}::text"), None),
        },
        "vector" => vector(
            ColumnKind::Vector,
            dim,
            q.clone(),
            float_vector_field(name, dim),
        ),
        "halfvec" => match config.halfvec {
            HalfvecMode::Float16 => vector(
                ColumnKind::HalfVec,
                dim,
                q.clone(),
                float16_vector_field(name, dim),
            ),
            HalfvecMode::Float32 => vector(
                ColumnKind::HalfAsFloat32,
                dim,
                format!("{q}::vector"),
                float_vector_field(name, dim),
            ),
        },
        "sparsevec" => vector(
            ColumnKind::Sparse,
            0,
            q.clone(),
            sparse_float_vector_field(name),
        ),
        "bit" | "varbit" => {
            if dim == 0 {
                // Probed later; the field is rebuilt with the dimension.
                vector(
                    ColumnKind::Bit,
                    0,
                    q.clone(),
                    Field::new(name, DataType::Null, false),
                )
            } else {
                let field = binary_vector_field(name, dim).map_err(|_| {
                    Error::unsupported(
                        format!("column `{name}`"),
                        format!("{pg_type} has {dim} bits; a Milvus binary vector needs a positive multiple of 8"),
                    )
                })?;
                vector(ColumnKind::Bit, dim, q.clone(), field)
            }
        }
        "_bool" | "_int2" | "_int4" | "_int8" | "_float4" | "_float8" | "_text" | "_varchar" => {
            match elem {
                "bool" => list(Elem::Bool, DataType::Boolean),
                "int2" => list(Elem::Int16, DataType::Int16),
                "int4" => list(Elem::Int32, DataType::Int32),
                "int8" => list(Elem::Int64, DataType::Int64),
                "float4" => list(Elem::Float32, DataType::Float32),
                "float8" => list(Elem::Float64, DataType::Float64),
                _ => list(Elem::Text, DataType::Utf8),
            }
        }
        _ => None,
    })
}

/// A vector column without a declared dimension: the dimension of its first non-null value.
async fn with_probed_dim(
    conn: &mut PgConnection,
    col: Column,
    from: &str,
    what: &str,
    server: &str,
) -> Result<Column> {
    let q = quote_ident(&col.name);
    let probe = if col.kind == ColumnKind::Bit {
        format!("SELECT length({q})::int8 FROM {from} WHERE {q} IS NOT NULL LIMIT 1")
    } else {
        format!("SELECT vector_dims({q})::int8 FROM {from} WHERE {q} IS NOT NULL LIMIT 1")
    };
    let dim: Option<(i64,)> = sqlx::query_as(&probe)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| pg_error(e, server, "reading the dimension of a vector column"))?;
    let Some(dim) = dim
        .and_then(|(d,)| usize::try_from(d).ok())
        .filter(|d| *d > 0)
    else {
        return Err(Error::unsupported(
            format!("column `{}` of {what}", col.name),
            format!(
                "{} declares no dimension and holds no value to take it from; declare it as `{}(n)`",
                col.pg_type, col.pg_type
            ),
        ));
    };
    let field = match col.kind {
        ColumnKind::Vector | ColumnKind::HalfAsFloat32 => float_vector_field(&col.name, dim),
        ColumnKind::HalfVec => float16_vector_field(&col.name, dim),
        _ => binary_vector_field(&col.name, dim).map_err(|_| {
            Error::unsupported(
                format!("column `{}` of {what}", col.name),
                format!("its bit strings have {dim} bits; a Milvus binary vector needs a positive multiple of 8"),
            )
        })?,
    };
    Ok(Column { dim, field, ..col })
}

/// The Milvus metric of pgvector operator class `opclass`, when there is one.
pub fn metric_of_opclass(opclass: &str) -> Option<&'static str> {
    [
        ("_l2_ops", "L2"),
        ("_ip_ops", "IP"),
        ("_cosine_ops", "COSINE"),
        ("_hamming_ops", "HAMMING"),
        ("_jaccard_ops", "JACCARD"),
    ]
    .iter()
    .find(|(suffix, _)| opclass.ends_with(suffix))
    .map(|(_, m)| *m)
}

/// The metric of the first ivfflat/hnsw index on attribute `att` of relation `rel`.
async fn index_metric(
    conn: &mut PgConnection,
    rel: i64,
    att: i16,
    server: &str,
) -> Result<Option<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT ic.relname::text, opc.opcname::text FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
         JOIN pg_opclass opc ON opc.oid = i.indclass[0] \
         WHERE i.indrelid = $1::int8::oid AND i.indkey[0] = $2 AND am.amname IN ('ivfflat', 'hnsw') \
         ORDER BY ic.relname",
    )
    .bind(rel)
    .bind(att)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| pg_error(e, server, "reading the vector indexes"))?;
    for (index, opclass) in rows {
        match metric_of_opclass(&opclass) {
            Some(m) => return Ok(Some(m.to_string())),
            None => tracing::warn!(
                "pgvector: index {index} uses operator class {opclass}, which has no Milvus metric; not taken as the metric"
            ),
        }
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
async fn resolve_key(
    conn: &mut PgConnection,
    config: &PgvectorSourceConfig,
    from: &str,
    what: &str,
    table_oid: Option<i64>,
    relkind: &str,
    described: &[Described],
    server: &str,
) -> Result<Key> {
    let ctid_ok = matches!(relkind, "r" | "m");
    let name = match (&config.pk, table_oid) {
        (Some(pk), _) if pk == "ctid" => {
            if !ctid_ok {
                return Err(Error::config(
                    PLUGIN,
                    format!("{what} is not a plain table, so it cannot be read by ctid; give `pk` = a unique, non-null column"),
                ));
            }
            return Ok(Key::Ctid);
        }
        (Some(pk), _) => pk.clone(),
        (None, Some(oid)) => {
            let pk: Vec<(String,)> = sqlx::query_as(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::int8::oid AND i.indisprimary",
            )
            .bind(oid)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| pg_error(e, server, "reading the primary key"))?;
            match pk.as_slice() {
                [(one,)] => one.clone(),
                [] if ctid_ok => {
                    tracing::info!("pgvector: {what} has no primary key; reading it by ctid ranges (exact only while nobody writes to it)");
                    return Ok(Key::Ctid);
                }
                [] => {
                    return Err(Error::config(
                        PLUGIN,
                        format!("{what} has no primary key; give `pk` = a unique, non-null column to page by"),
                    ))
                }
                many => {
                    return Err(Error::config(
                        PLUGIN,
                        format!(
                            "{what} has a primary key of {} columns ({}); vmig pages by one column: give `pk` = a unique, non-null column, or `pk = \"ctid\"`",
                            many.len(),
                            many.iter().map(|(c,)| c.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
            }
        }
        (None, None) => return Err(Error::config(PLUGIN, "`query` needs `pk`")),
    };
    let d = match described.iter().find(|d| d.name == name) {
        Some(d) => d.clone(),
        None => describe(
            conn,
            &format!("SELECT {} FROM {from} LIMIT 0", quote_ident(&name)),
            server,
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::config(PLUGIN, format!("`pk` column `{name}` is not in {what}")))?,
    };
    let (typname, _, pg_type) = type_names(conn, d.oid.unwrap_or(0), -1, server).await?;
    Ok(match typname.as_str() {
        "int2" | "int4" | "int8" => Key::Int(name),
        "text" | "varchar" => Key::Text(name),
        "uuid" => Key::Uuid(name),
        _ => {
            return Err(Error::config(
                PLUGIN,
                format!("the key column `{name}` of {what} is of type {pg_type}; vmig pages by an integer, text/varchar or uuid column: give `pk` = another unique, non-null column{}", if ctid_ok { ", or `pk = \"ctid\"`" } else { "" }),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_metrics_mapped() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("Items"), "\"Items\"");
        assert_eq!(metric_of_opclass("vector_l2_ops"), Some("L2"));
        assert_eq!(metric_of_opclass("halfvec_ip_ops"), Some("IP"));
        assert_eq!(metric_of_opclass("sparsevec_cosine_ops"), Some("COSINE"));
        assert_eq!(metric_of_opclass("bit_hamming_ops"), Some("HAMMING"));
        assert_eq!(metric_of_opclass("vector_l1_ops"), None);
    }

    #[test]
    fn types_map_as_the_table_says() {
        let c = PgvectorSourceConfig::table("postgres://h/db", "t");
        let col = |t: &str, e: &str, m: i32| classify("c", t, e, t, m, true, &c).unwrap();
        assert_eq!(
            col("vector", "", 3).unwrap().field.data_type(),
            &vmig_core::vector::float_vector_type(3)
        );
        assert_eq!(
            col("varchar", "", 24).unwrap().field.metadata()[META_MAX_LENGTH],
            "20"
        );
        assert_eq!(col("numeric", "", -1).unwrap().select, "\"c\"::float8");
        assert!(col("point", "", -1).is_none());
        assert!(col("_numeric", "numeric", -1).is_none());
        assert!(classify("c", "bit", "", "bit(12)", 12, false, &c).is_err());
    }
}
