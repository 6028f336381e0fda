//! Milvus key-value parameter lists (`KeyValuePair`: field type params, index params, query
//! params, import task infos): building one pair, finding a key's value.

use milvus::proto::common::KeyValuePair;

/// The pair `key = value`.
pub(crate) fn pair(key: &str, value: impl ToString) -> KeyValuePair {
    KeyValuePair {
        key: key.to_string(),
        value: value.to_string(),
    }
}

/// The value of the first pair named `key` in `params`.
pub(crate) fn value_of(params: &[KeyValuePair], key: &str) -> Option<String> {
    params
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_finds_pairs() {
        let params = vec![pair("dim", 128), pair("metric_type", "L2"), pair("dim", 7)];
        assert_eq!(params[0].key, "dim");
        assert_eq!(params[0].value, "128");
        assert_eq!(value_of(&params, "dim").as_deref(), Some("128"));
        assert_eq!(value_of(&params, "metric_type").as_deref(), Some("L2"));
        assert_eq!(value_of(&params, "max_length"), None);
    }
}
