//! Transformers that change which fields there are and what they are called.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use vmig_core::vector::{META_COLLECTION, META_PRIMARY_KEY};
use vmig_core::{Error, Result, TransformConfig, Transformer};

use crate::field_index;

/// `type = "select"`: keep only `fields`, in that order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// The fields to keep, in output order.
    pub fields: Vec<String>,
}

impl TransformConfig for SelectConfig {
    const NAME: &'static str = "select";
    const SUMMARY: &'static str = "Keep only the named fields, in the given order.";
    fn example() -> Self {
        SelectConfig {
            fields: vec!["id".into(), "vector".into()],
        }
    }
    fn build(&self) -> Result<Box<dyn Transformer>> {
        if self.fields.is_empty() {
            return Err(Error::config(
                "select",
                "`fields` must name at least one field",
            ));
        }
        let mut seen = HashSet::new();
        if let Some(dup) = self.fields.iter().find(|f| !seen.insert(f.as_str())) {
            return Err(Error::config(
                "select",
                format!("field `{dup}` is listed twice"),
            ));
        }
        Ok(Box::new(Project {
            plugin: "select",
            keep: Keep::Only(self.fields.clone()),
        }))
    }
}

/// `type = "drop"`: remove `fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    /// The fields to remove.
    pub fields: Vec<String>,
}

impl TransformConfig for DropConfig {
    const NAME: &'static str = "drop";
    const SUMMARY: &'static str = "Remove the named fields.";
    fn example() -> Self {
        DropConfig {
            fields: vec!["internal_score".into()],
        }
    }
    fn build(&self) -> Result<Box<dyn Transformer>> {
        Ok(Box::new(Project {
            plugin: "drop",
            keep: Keep::AllBut(self.fields.clone()),
        }))
    }
}

#[derive(Debug)]
enum Keep {
    Only(Vec<String>),
    AllBut(Vec<String>),
}

#[derive(Debug)]
struct Project {
    plugin: &'static str,
    keep: Keep,
}

impl Project {
    fn indices(&self, schema: &Schema) -> Result<Vec<usize>> {
        match &self.keep {
            Keep::Only(names) => names
                .iter()
                .map(|n| field_index(schema, n, self.plugin))
                .collect(),
            Keep::AllBut(names) => {
                let mut drop = HashSet::new();
                for n in names {
                    drop.insert(field_index(schema, n, self.plugin)?);
                }
                Ok((0..schema.fields().len())
                    .filter(|i| !drop.contains(i))
                    .collect())
            }
        }
    }
}

impl Transformer for Project {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let indices = self.indices(input)?;
        if indices.is_empty() {
            return Err(Error::schema(format!(
                "`{}` would remove every field",
                self.plugin
            )));
        }
        Ok(Arc::new(input.project(&indices)?))
    }

    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let indices = self.indices(&batch.schema())?;
        Ok(batch.project(&indices)?)
    }
}

/// `type = "rename"`: rename fields, `fields = { old = "new" }`.
///
/// The primary-key marker follows a renamed primary key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConfig {
    /// Old name → new name.
    pub fields: BTreeMap<String, String>,
}

impl TransformConfig for RenameConfig {
    const NAME: &'static str = "rename";
    const SUMMARY: &'static str = "Rename fields: fields = { old = \"new\" }.";
    fn example() -> Self {
        RenameConfig {
            fields: BTreeMap::from([("vector".into(), "embedding".into())]),
        }
    }
    fn build(&self) -> Result<Box<dyn Transformer>> {
        if let Some((old, _)) = self.fields.iter().find(|(_, new)| new.is_empty()) {
            return Err(Error::config(
                "rename",
                format!("the new name of `{old}` is empty"),
            ));
        }
        Ok(Box::new(Rename {
            fields: self.fields.clone(),
        }))
    }
}

#[derive(Debug)]
struct Rename {
    fields: BTreeMap<String, String>,
}

impl Transformer for Rename {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        for old in self.fields.keys() {
            field_index(input, old, "rename")?;
        }
        let fields: Vec<_> = input
            .fields()
            .iter()
            .map(|f| match self.fields.get(f.name()) {
                Some(new) => Arc::new(f.as_ref().clone().with_name(new.clone())),
                None => Arc::clone(f),
            })
            .collect();
        let mut seen = HashSet::new();
        if let Some(dup) = fields.iter().find(|f| !seen.insert(f.name().clone())) {
            return Err(Error::schema(format!(
                "`rename` would make two fields called `{}`",
                dup.name()
            )));
        }
        let mut metadata = input.metadata().clone();
        if let Some(pk) = metadata
            .get(META_PRIMARY_KEY)
            .and_then(|pk| self.fields.get(pk))
        {
            metadata.insert(META_PRIMARY_KEY.to_string(), pk.clone());
        }
        Ok(Arc::new(Schema::new_with_metadata(fields, metadata)))
    }

    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = self.output_schema(&batch.schema())?;
        Ok(RecordBatch::try_new(schema, batch.columns().to_vec())?)
    }
}

/// `type = "collection"`: name the target collection.
///
/// Sinks use this name unless their own config names a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// The target collection name.
    pub name: String,
}

impl TransformConfig for CollectionConfig {
    const NAME: &'static str = "collection";
    const SUMMARY: &'static str = "Set the target collection name: name = \"books\".";
    fn example() -> Self {
        CollectionConfig {
            name: "books".into(),
        }
    }
    fn build(&self) -> Result<Box<dyn Transformer>> {
        let valid = self
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && self.name.len() <= 255;
        if !valid {
            return Err(Error::config(
                "collection",
                format!(
                    "`{}` is not a valid Milvus collection name (letters, digits and _, starting with a letter or _, at most 255)",
                    self.name
                ),
            ));
        }
        Ok(Box::new(SetCollection {
            name: self.name.clone(),
        }))
    }
}

#[derive(Debug)]
struct SetCollection {
    name: String,
}

impl Transformer for SetCollection {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let mut metadata = input.metadata().clone();
        metadata.insert(META_COLLECTION.to_string(), self.name.clone());
        Ok(Arc::new(Schema::new_with_metadata(
            input.fields().clone(),
            metadata,
        )))
    }

    fn transform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = self.output_schema(&batch.schema())?;
        // Not `with_schema`: that refuses a changed metadata value, and a source that names
        // its collection (the milvus2 source) gives one here.
        Ok(RecordBatch::try_new(schema, batch.columns().to_vec())?)
    }
}
