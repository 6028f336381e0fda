//! The built-in transformers, looked up through the registry as a job file would.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float64Array, Int64Array, ListArray, StringArray,
};
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::json;
use vmig_core::registry::{build_transform, transforms};
use vmig_core::vector::{
    milvus_type, vector_info, VectorType, META_COLLECTION, META_DIM, META_PRIMARY_KEY,
};
use vmig_core::Transformer;
use vmig_testing::gen::{sample_batch, sample_schema};
use vmig_transforms as _;

fn t(name: &str, config: serde_json::Value) -> Box<dyn Transformer> {
    build_transform(name, config).unwrap()
}

fn with_pk(batch: RecordBatch) -> RecordBatch {
    let schema = batch.schema().as_ref().clone();
    let mut meta = schema.metadata().clone();
    meta.insert(META_PRIMARY_KEY.to_string(), "id".to_string());
    batch
        .with_schema(Arc::new(Schema::new_with_metadata(
            schema.fields().clone(),
            meta,
        )))
        .unwrap()
}

#[test]
fn all_builtins_are_registered() {
    let names: Vec<&str> = transforms().unwrap().keys().copied().collect();
    assert_eq!(
        names,
        ["cast", "collection", "drop", "filter", "rename", "select"]
    );
    for plugin in transforms().unwrap().values() {
        // Every example config builds.
        plugin.parse(plugin.example_config()).unwrap();
    }
}

#[test]
fn select_keeps_order_and_values() {
    let b = sample_batch(1, 0, 20, 4);
    let s = t("select", json!({"fields": ["score", "id"]}));
    let out = s.transform(b.clone()).unwrap();
    assert_eq!(out.schema(), s.output_schema(&b.schema()).unwrap());
    assert_eq!(out.num_columns(), 2);
    assert_eq!(out.column(0), b.column(3));
    assert_eq!(out.column(1), b.column(0));
    let err = s
        .output_schema(&Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Int8,
            false,
        )])))
        .unwrap_err();
    assert!(err.to_string().contains("`score`"), "{err}");
    assert_eq!(
        build_transform("select", json!({"fields": ["a", "a"]}))
            .unwrap_err()
            .to_string(),
        "invalid `select` configuration: field `a` is listed twice"
    );
    assert_eq!(
        build_transform("select", json!({"fieldz": ["a"]}))
            .unwrap_err()
            .to_string(),
        "invalid `select` configuration: `fieldz`: unknown field `fieldz`, expected `fields`"
    );
}

#[test]
fn drop_removes_fields() {
    let b = sample_batch(1, 0, 5, 4);
    let out = t("drop", json!({"fields": ["title", "flag"]}))
        .transform(b)
        .unwrap();
    let names: Vec<_> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "vector", "score"]);
}

#[test]
fn rename_moves_the_primary_key_marker_and_keeps_vectors() {
    let b = with_pk(sample_batch(2, 0, 10, 8));
    let r = t(
        "rename",
        json!({"fields": {"vector": "embedding", "id": "pk"}}),
    );
    let out = r.transform(b.clone()).unwrap();
    let schema = out.schema();
    assert_eq!(schema.metadata()[META_PRIMARY_KEY], "pk");
    let emb = schema.field_with_name("embedding").unwrap();
    assert_eq!(vector_info(emb).unwrap().kind, VectorType::Float32);
    assert_eq!(out.column(1), b.column(1));
    let clash = t("rename", json!({"fields": {"vector": "id"}}));
    assert!(clash
        .output_schema(&sample_schema(8))
        .unwrap_err()
        .to_string()
        .contains("two fields"));
    let missing = t("rename", json!({"fields": {"nope": "x"}}));
    assert_eq!(missing.output_schema(&sample_schema(8)).unwrap_err().to_string(), "schema error: `rename` names field `nope`, which is not in the data (fields: id, vector, title, score, flag)");
}

#[test]
fn cast_converts_and_names_the_bad_row() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int64, true),
        Field::new("x", DataType::Float64, false),
    ]));
    let ok = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![Some(1), None, Some(-7)])) as ArrayRef,
            Arc::new(Float64Array::from(vec![0.1, -2.5, 1e30])),
        ],
    )
    .unwrap();
    let c = t("cast", json!({"fields": {"n": "int32", "x": "float"}}));
    let out = c.transform(ok.clone()).unwrap();
    assert_eq!(out.schema(), c.output_schema(&schema).unwrap());
    let n = out.column(0).as_primitive::<Int32Type>();
    assert_eq!(n.iter().collect::<Vec<_>>(), vec![Some(1), None, Some(-7)]);
    let x = out.column(1).as_primitive::<Float32Type>();
    assert_eq!(
        x.values().to_vec(),
        vec![0.1f64 as f32, -2.5, 1e30f64 as f32]
    );

    let overflow = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![Some(1), Some(i64::MAX)])) as ArrayRef,
            Arc::new(Float64Array::from(vec![0.0, 0.0])),
        ],
    )
    .unwrap();
    let err = c.transform(overflow).unwrap_err().to_string();
    assert!(err.contains("field `n`, row 1"), "{err}");
    assert!(err.contains(&i64::MAX.to_string()), "{err}");

    let too_big = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![Some(1)])) as ArrayRef,
            Arc::new(Float64Array::from(vec![1e300])),
        ],
    )
    .unwrap();
    let err = c.transform(too_big).unwrap_err().to_string();
    assert!(err.contains("float32's range"), "{err}");

    let to_text = t("cast", json!({"fields": {"id": "varchar"}}));
    let out = to_text.transform(sample_batch(3, 100, 3, 4)).unwrap();
    let ids: Vec<_> = out.column(0).as_string::<i32>().iter().flatten().collect();
    assert_eq!(ids, ["100", "101", "102"]);
    assert_eq!(
        t("cast", json!({"fields": {"vector": "int64"}}))
            .output_schema(&sample_schema(4))
            .unwrap_err()
            .to_string(),
        "schema error: cannot cast field `vector` from FixedSizeList(4 x Float32) to Int64"
    );
}

/// A one-column batch `v` holding `rows` as a variable-size list of float64, its field carrying
/// `metadata`.
fn list_batch(rows: Vec<Option<Vec<Option<f64>>>>, metadata: &[(&str, &str)]) -> RecordBatch {
    let list = ListArray::from_iter_primitive::<arrow::datatypes::Float64Type, _, _>(rows);
    let field = Field::new("v", list.data_type().clone(), true).with_metadata(
        metadata
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<std::collections::HashMap<_, _>>(),
    );
    let schema = Arc::new(Schema::new(vec![field]));
    RecordBatch::try_new(schema, vec![Arc::new(list) as ArrayRef]).unwrap()
}

/// Casts `b` with `config`, checking that the first field is planned as the Milvus type `milvus`
/// and that the output has exactly the planned schema; returns the output.
fn cast_as_planned(config: serde_json::Value, b: RecordBatch, milvus: &str) -> RecordBatch {
    let cast = t("cast", config);
    let planned = cast.output_schema(&b.schema()).unwrap();
    assert_eq!(milvus_type(planned.field(0)).as_deref(), Some(milvus));
    let out = cast.transform(b).unwrap();
    assert_eq!(out.schema(), planned);
    out
}

#[test]
fn cast_lists_to_float_vectors() {
    let values: Vec<Option<Vec<Option<f64>>>> = vec![
        Some(vec![Some(0.5), Some(-1.25), Some(3.0)]),
        Some(vec![Some(1e-3), Some(2.0), Some(-0.0)]),
    ];
    let out = cast_as_planned(
        json!({"fields": {"v": "float_vector"}, "dims": {"v": 3}}),
        list_batch(values.clone(), &[]),
        "FloatVector(3)",
    );
    let f = out.schema().field(0).clone();
    assert_eq!(vector_info(&f).unwrap().dim, 3);
    let fsl: &FixedSizeListArray = out.column(0).as_fixed_size_list();
    let got: Vec<u32> = fsl
        .values()
        .as_primitive::<Float32Type>()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let want: Vec<u32> = values
        .iter()
        .flatten()
        .flatten()
        .map(|v| (v.unwrap() as f32).to_bits())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn cast_to_float_vector_plans_the_dimension_from_metadata() {
    // A null row is a null vector, not a wrong length.
    let out = cast_as_planned(
        json!({"fields": {"v": "float_vector"}}),
        list_batch(
            vec![Some(vec![Some(1.0), Some(2.0)]), None],
            &[(META_DIM, "2")],
        ),
        "FloatVector(2)",
    );
    assert_eq!(out.column(0).null_count(), 1);
}

#[test]
fn cast_to_float_vector_refuses_an_unknown_or_contradicted_dimension_at_plan_time() {
    let plan_err = |config: serde_json::Value, b: &RecordBatch| {
        t("cast", config)
            .output_schema(&b.schema())
            .unwrap_err()
            .to_string()
    };
    let bare = list_batch(vec![Some(vec![Some(1.0)])], &[]);
    assert_eq!(
        plan_err(json!({"fields": {"v": "float_vector"}}), &bare),
        "schema error: cannot plan the dimension of float vector `v`: it is a variable-size list \
         without `vmig.dim` metadata; give it beside `fields`, e.g. `dims = { v = 768 }`"
    );
    let tagged = list_batch(vec![Some(vec![Some(1.0)])], &[(META_DIM, "4")]);
    assert_eq!(
        plan_err(
            json!({"fields": {"v": "float_vector"}, "dims": {"v": 8}}),
            &tagged
        ),
        "schema error: `dims` gives field `v` 8 dimensions, but its `vmig.dim` metadata says 4"
    );
    assert_eq!(
        plan_err(
            json!({"fields": {"vector": "float_vector"}, "dims": {"vector": 8}}),
            &sample_batch(1, 0, 1, 4)
        ),
        "schema error: `dims` gives field `vector` 8 dimensions, but it is a fixed-size list of 4 values"
    );
    let build_err = |config| build_transform("cast", config).unwrap_err().to_string();
    assert_eq!(
        build_err(json!({"fields": {"id": "varchar"}, "dims": {"id": 8}})),
        "invalid `cast` configuration: `dims` names field `id`, which `fields` does not cast to \"float_vector\""
    );
    assert_eq!(
        build_err(json!({"fields": {"v": "float_vector"}, "dims": {"v": 0}})),
        "invalid `cast` configuration: `dims.v` is 0; a vector dimension must be between 1 and 2147483647"
    );
}

#[test]
fn cast_to_float_vector_names_the_row_whose_length_is_not_the_planned_dimension() {
    let cast = t(
        "cast",
        json!({"fields": {"v": "float_vector"}, "dims": {"v": 2}}),
    );
    // Every row has the same length, but not the planned one: row 0 is named.
    let b = list_batch(
        vec![Some(vec![Some(1.0); 3]), Some(vec![Some(1.0); 3])],
        &[],
    );
    assert_eq!(
        cast.transform(b).unwrap_err().to_string(),
        "invalid data at field `v`, row 0 of the batch: vector has 3 values but the planned dimension is 2"
    );
    let ragged = list_batch(
        vec![
            Some(vec![Some(1.0), Some(2.0)]),
            None,
            Some(vec![Some(1.0)]),
        ],
        &[],
    );
    assert_eq!(
        cast.transform(ragged).unwrap_err().to_string(),
        "invalid data at field `v`, row 2 of the batch: vector has 1 values but the planned dimension is 2"
    );
}

#[test]
fn cast_to_json_checks_text() {
    let schema = Arc::new(Schema::new(vec![Field::new("j", DataType::Utf8, true)]));
    let b = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec![
            Some("{\"a\":1}"),
            None,
            Some("{oops"),
        ])) as ArrayRef],
    )
    .unwrap();
    let err = t("cast", json!({"fields": {"j": "json"}}))
        .transform(b)
        .unwrap_err();
    assert!(err.to_string().contains("row 2"), "{err}");
}

#[test]
fn collection_sets_the_target_name() {
    let c = t("collection", json!({"name": "books_2024"}));
    let out = c.transform(sample_batch(1, 0, 2, 4)).unwrap();
    assert_eq!(out.schema().metadata()[META_COLLECTION], "books_2024");
    // A batch that names its source collection is renamed too.
    let again = t("collection", json!({"name": "books_2025"}));
    let out = again.transform(out).unwrap();
    assert_eq!(out.schema().metadata()[META_COLLECTION], "books_2025");
    assert_eq!(out.num_rows(), 2);
    assert_eq!(build_transform("collection", json!({"name": "9books"})).unwrap_err().to_string(), "invalid `collection` configuration: `9books` is not a valid Milvus collection name (letters, digits and _, starting with a letter or _, at most 255)");
    assert_eq!(build_transform("collection", json!({"name": "bad-name"})).unwrap_err().to_string(), "invalid `collection` configuration: `bad-name` is not a valid Milvus collection name (letters, digits and _, starting with a letter or _, at most 255)");
}

#[test]
fn filter_combines_conditions_with_sql_null_semantics() {
    let b = sample_batch(5, 0, 50, 4); // titles of ids divisible by 7 are null
    let f = t(
        "filter",
        json!({"where": [
            {"field": "id", "op": ">=", "value": 10},
            {"field": "id", "op": "not_in", "value": [12, 13]},
            {"field": "title", "op": "is_not_null"},
        ]}),
    );
    let out = f.transform(b).unwrap();
    let ids: Vec<i64> = out
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .to_vec();
    let want: Vec<i64> = (10..50)
        .filter(|i| *i != 12 && *i != 13 && i % 7 != 0)
        .collect();
    assert_eq!(ids, want);

    let eq = t(
        "filter",
        json!({"where": [{"field": "title", "op": "eq", "value": "título 3 ✓"}]}),
    );
    let out = eq.transform(sample_batch(5, 0, 10, 4)).unwrap();
    assert_eq!(out.num_rows(), 1);
    let any = t(
        "filter",
        json!({"where": [{"field": "id", "op": "in", "value": [1, 4, 99]}]}),
    );
    assert_eq!(
        any.transform(sample_batch(5, 0, 10, 4)).unwrap().num_rows(),
        2
    );

    // Type problems surface at plan time.
    let bad = t(
        "filter",
        json!({"where": [{"field": "id", "op": "eq", "value": "abc"}]}),
    );
    assert_eq!(
        bad.output_schema(&sample_schema(4))
            .unwrap_err()
            .to_string(),
        "invalid `filter` configuration: value \"abc\" cannot be compared with `id` (Int64)"
    );
    let vec_cmp = t(
        "filter",
        json!({"where": [{"field": "vector", "op": "eq", "value": 1}]}),
    );
    assert!(vec_cmp
        .output_schema(&sample_schema(4))
        .unwrap_err()
        .to_string()
        .contains("scalar"));
    assert_eq!(
        build_transform(
            "filter",
            json!({"where": [{"field": "id", "op": "in", "value": 3}]})
        )
        .unwrap_err()
        .to_string(),
        "invalid `filter` configuration: `In` on `id` needs a list value"
    );
    assert_eq!(
        build_transform(
            "filter",
            json!({"where": [{"field": "id", "op": "is_null", "value": 3}]})
        )
        .unwrap_err()
        .to_string(),
        "invalid `filter` configuration: `IsNull` on `id` takes no value"
    );
}

#[test]
fn cast_keeps_a_vectors_metric_and_sets_and_enforces_varchar_max_length() {
    let cast = t(
        "cast",
        json!({"fields": {"v": "float_vector"}, "dims": {"v": 2}}),
    );
    let b = list_batch(
        vec![Some(vec![Some(1.0), Some(2.0)])],
        &[("vmig.metric", "IP"), ("vmig.max_capacity", "9")],
    );
    let planned = cast.output_schema(&b.schema()).unwrap();
    let meta = planned.field(0).metadata();
    assert_eq!(meta.get("vmig.metric").map(String::as_str), Some("IP"));
    assert_eq!(meta.get("vmig.max_capacity"), None);

    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Int64, true)]));
    let b = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![Some(7), Some(123_456), None])) as ArrayRef],
    )
    .unwrap();
    let fits = t(
        "cast",
        json!({"fields": {"s": "varchar"}, "max_length": {"s": 6}}),
    );
    let planned = fits.output_schema(&b.schema()).unwrap();
    assert_eq!(
        planned
            .field(0)
            .metadata()
            .get("vmig.max_length")
            .map(String::as_str),
        Some("6")
    );
    let out = fits.transform(b.clone()).unwrap();
    let got: Vec<Option<&str>> = out.column(0).as_string::<i32>().iter().collect();
    assert_eq!(got, vec![Some("7"), Some("123456"), None]);

    let short = t(
        "cast",
        json!({"fields": {"s": "varchar"}, "max_length": {"s": 5}}),
    );
    let err = short.transform(b).unwrap_err().to_string();
    assert!(
        err.contains("field `s`, row 1") && err.contains("6 bytes, longer than its max_length 5"),
        "{err}"
    );
    let err = build_transform(
        "cast",
        json!({"fields": {"s": "int64"}, "max_length": {"s": 5}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("does not cast to \"varchar\""), "{err}");
    let err = build_transform(
        "cast",
        json!({"fields": {"s": "varchar"}, "max_length": {"s": 70000}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Milvus allows 1..=65535"), "{err}");
}
