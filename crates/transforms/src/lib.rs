//! vmig-transforms: the built-in transformers, each a registered plugin.
//!
//! | `type`       | what it does                                                         |
//! |--------------|----------------------------------------------------------------------|
//! | `select`     | keeps the named fields, in the given order                           |
//! | `drop`       | removes the named fields                                             |
//! | `rename`     | renames fields (`fields = { vector = "embedding" }`)                 |
//! | `cast`       | changes field types (`fields = { score = "float32", id = "varchar" }`) |
//! | `collection` | names the target collection (`name = "books"`)                       |
//! | `filter`     | keeps rows whose scalar fields match every condition                 |
//!
//! The main design decision: transformers are stateless functions of one batch, and every one
//! computes its output schema from its input schema before any data moves, so a job that
//! renames a field that does not exist, or casts text to a number, fails at plan time. Value
//! errors (an overflow in a cast) name the field and the row within the batch.
#![warn(missing_docs)]

mod cast;
mod fields;
mod filter;

pub use cast::{CastConfig, CastTarget};
pub use fields::{CollectionConfig, DropConfig, RenameConfig, SelectConfig};
pub use filter::{Condition, FilterConfig, Op};

use arrow::datatypes::Schema;
use vmig_core::{Error, Result};

/// Finds a field by name or fails naming the available fields.
pub(crate) fn field_index(schema: &Schema, name: &str, plugin: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::schema(format!(
            "`{plugin}` names field `{name}`, which is not in the data (fields: {})",
            names.join(", ")
        ))
    })
}

vmig_core::register_transform!(SelectConfig);
vmig_core::register_transform!(DropConfig);
vmig_core::register_transform!(RenameConfig);
vmig_core::register_transform!(CastConfig);
vmig_core::register_transform!(CollectionConfig);
vmig_core::register_transform!(FilterConfig);
