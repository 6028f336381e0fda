//! Milvus 1.x partition tags → Milvus 2.x partition names.
//!
//! 1.x accepted almost any tag (`2021`, `2023-q1`, `北京`); a 2.x partition name must start with
//! a letter or `_` and hold only ASCII letters, digits and `_`, at most 255 characters (Milvus's
//! `ValidatePartitionName`). Every tag gets its target name by this rule, in this order:
//!
//! 1. a tag listed in `partition_names` gets the name given there (the override);
//! 2. a tag that is already a valid 2.x name keeps it;
//! 3. with `invalid_partition_tags = "error"` any other tag is an error naming it;
//! 4. otherwise (`"map"`, the default) the tag is rewritten: ASCII letters, digits and `_` stay;
//!    any other ASCII character becomes `_`; a non-ASCII character becomes `u` and its Unicode
//!    code point in lowercase hex, at least 4 digits (`é` → `u00e9`, `北` → `u5317`); a result
//!    that starts with a digit gets the prefix `p_` (`2023-q1` → `p_2023_q1`); one longer than 255
//!    characters is cut to 246 and gets the suffix of step 5;
//! 5. a rewritten name that another tag also ends up with (a valid tag, an override, another
//!    rewritten tag) or that is `_default` (where the collection's own rows go) gets `_` and 8
//!    hex digits of the FNV-1a (32-bit) hash of the original tag appended, for each tag sharing
//!    it (`2023-q1` and `2023.q1` → `p_2023_q1_<hash>` each); if even that name is taken, the job
//!    stops naming both tags and asks for `partition_names`.
//!
//! The result depends only on the set of tags and the config, never on their order, so a rerun
//! or a resume writes to the same partitions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vmig_core::ids::fnv1a_32 as fnv1a;
use vmig_core::{Error, Result};

/// What happens to a 1.x partition tag that is not a valid Milvus 2.x partition name and is not
/// in `partition_names`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidPartitionTags {
    /// Rewrite it by the documented rule (the default).
    #[default]
    Map,
    /// Stop the job naming the tag, so every such tag is mapped by hand in `partition_names`.
    Error,
}

/// The longest Milvus 2.x partition name.
const MAX_NAME: usize = 255;

/// The partition the rows of the collection itself (no tag) go to in Milvus 2.x.
const DEFAULT_PARTITION: &str = "_default";

/// Whether `name` is a valid Milvus 2.x partition name.
pub(crate) fn valid_partition_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && name.len() <= MAX_NAME
}

/// How a tag got its target name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// The tag is a valid name and kept.
    Kept,
    /// Given in `partition_names`.
    Override,
    /// Rewritten by the rule.
    Mapped,
}

/// A tag's target partition name and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The Milvus 2.x partition name.
    pub(crate) name: String,
    /// How it was chosen.
    pub(crate) how: How,
}

/// `base` (cut so the result fits in 255 characters) + `_` + the tag's 8-hex-digit hash.
fn with_hash(base: &str, tag: &str) -> String {
    let keep = base.len().min(MAX_NAME - 9); // base is ASCII: any cut is on a char boundary
    format!("{}_{:08x}", &base[..keep], fnv1a(tag.as_bytes()))
}

/// Steps 4 of the rule for one tag, before the collision check of step 5.
pub(crate) fn rewrite(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    for c in tag.chars() {
        if c == '_' || c.is_ascii_alphanumeric() {
            out.push(c);
        } else if c.is_ascii() {
            out.push('_');
        } else {
            out.push_str(&format!("u{:04x}", u32::from(c)));
        }
    }
    if !out.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic()) {
        out.insert_str(0, "p_");
    }
    if out.len() > MAX_NAME {
        out = with_hash(&out, tag);
    }
    out
}

/// Chooses the target name of every tag in `tags` (the distinct tags of all collections read,
/// which share one target collection) by the module's rule.
///
/// # Errors
/// [`Error::Config`] naming the tag when `mode` is [`InvalidPartitionTags::Error`] and a tag is
/// neither valid nor in `overrides`, or naming both tags when two still share a name after
/// the hash suffix.
pub(crate) fn map_tags(
    tags: &BTreeSet<String>,
    overrides: &BTreeMap<String, String>,
    mode: InvalidPartitionTags,
) -> Result<BTreeMap<String, Target>> {
    let mut out = BTreeMap::new();
    let mut to_map = Vec::new();
    for tag in tags {
        let fixed = match overrides.get(tag) {
            Some(name) => Some((name.clone(), How::Override)),
            None if valid_partition_name(tag) => Some((tag.clone(), How::Kept)),
            None => None,
        };
        match (fixed, mode) {
            (Some((name, how)), _) => {
                out.insert(tag.clone(), Target { name, how });
            }
            (None, InvalidPartitionTags::Map) => to_map.push((tag, rewrite(tag))),
            (None, InvalidPartitionTags::Error) => {
                return Err(Error::config(
                    "milvus1",
                    format!(
                        "partition tag `{tag}` is not a valid Milvus 2.x partition name (letters, \
                         digits and _, not starting with a digit); map it in `partition_names = \
                         {{ \"{tag}\" = \"new_name\" }}`, or remove `invalid_partition_tags = \
                         \"error\"` to map it to `{}`",
                        rewrite(tag)
                    ),
                ))
            }
        }
    }
    // Step 5: a rewritten name shared with any other tag's name, or `_default`, gets the hash.
    let mut uses: BTreeMap<&str, usize> = BTreeMap::from([(DEFAULT_PARTITION, 1)]);
    for name in out
        .values()
        .map(|t| t.name.as_str())
        .chain(to_map.iter().map(|(_, n)| n.as_str()))
    {
        *uses.entry(name).or_default() += 1;
    }
    let names: Vec<(String, String)> = to_map
        .iter()
        .map(|(tag, name)| {
            let name = if uses.get(name.as_str()).copied().unwrap_or(0) > 1 {
                with_hash(name, tag)
            } else {
                name.clone()
            };
            ((*tag).clone(), name)
        })
        .collect();
    for (tag, name) in names {
        out.insert(
            tag,
            Target {
                name,
                how: How::Mapped,
            },
        );
    }
    // Whatever is left sharing a name with a rewritten tag is a clash the hash did not solve.
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (tag, t) in &out {
        if let Some(other) = owner.insert(t.name.as_str(), tag.as_str()) {
            let other_how = out.get(other).map(|o| o.how);
            if t.how == How::Mapped || other_how == Some(How::Mapped) {
                return Err(Error::config(
                    "milvus1",
                    format!(
                        "partition tags `{other}` and `{tag}` both map to the Milvus 2.x partition \
                         `{}`; give one of them its own name in `partition_names`",
                        t.name
                    ),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(tags: &[&str], overrides: &[(&str, &str)]) -> Result<BTreeMap<String, String>> {
        let tags = tags.iter().map(|t| (*t).to_string()).collect();
        let overrides = overrides
            .iter()
            .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
            .collect();
        Ok(map_tags(&tags, &overrides, InvalidPartitionTags::Map)?
            .into_iter()
            .map(|(k, v)| (k, v.name))
            .collect())
    }

    #[test]
    fn partition_names_follow_milvus_rules() {
        assert!(valid_partition_name("p2023"));
        assert!(valid_partition_name("_x"));
        assert!(!valid_partition_name("2023"));
        assert!(!valid_partition_name("a-b"));
        assert!(!valid_partition_name(""));
        assert!(!valid_partition_name(&"a".repeat(256)));
    }

    #[test]
    fn invalid_tags_are_rewritten_by_the_documented_rule() {
        assert_eq!(rewrite("2021"), "p_2021");
        assert_eq!(rewrite("2023-q1"), "p_2023_q1");
        assert_eq!(rewrite("2023-01-31"), "p_2023_01_31");
        assert_eq!(rewrite("sales 2023"), "sales_2023");
        assert_eq!(rewrite("-x"), "_x");
        assert_eq!(rewrite("北京"), "u5317u4eac");
        assert_eq!(rewrite("café"), "cafu00e9");
        assert_eq!(rewrite("😀"), "u1f600");
        let long = rewrite(&"x-".repeat(200));
        assert_eq!(long.len(), 255);
        assert!(valid_partition_name(&long), "{long}");
        for t in ["2021", "2023-q1", "北京", "café", "-", " ", "9"] {
            assert!(valid_partition_name(&rewrite(t)), "{t}");
        }
    }

    #[test]
    fn valid_tags_and_overrides_win_and_collisions_get_a_hash() {
        let m = map(
            &["2021", "2023-q1", "2023.q1", "p_2022", "2022", "ok", "x y"],
            &[("x y", "xy")],
        )
        .unwrap();
        assert_eq!(m["2021"], "p_2021");
        assert_eq!(m["ok"], "ok");
        assert_eq!(m["x y"], "xy");
        // `2023-q1` and `2023.q1` both rewrite to p_2023_q1: each gets its own hash.
        assert_eq!(m["2023-q1"], format!("p_2023_q1_{:08x}", fnv1a(b"2023-q1")));
        assert_eq!(m["2023.q1"], format!("p_2023_q1_{:08x}", fnv1a(b"2023.q1")));
        assert_ne!(m["2023-q1"], m["2023.q1"]);
        // `2022` rewrites to the valid tag `p_2022`, which keeps its name.
        assert_eq!(m["p_2022"], "p_2022");
        assert_eq!(m["2022"], format!("p_2022_{:08x}", fnv1a(b"2022")));
        // The rule does not depend on the order or on unrelated tags.
        assert_eq!(map(&["2021"], &[]).unwrap()["2021"], "p_2021");
        assert_eq!(map(&["-default"], &[]).unwrap()["-default"].len(), 17);
    }

    #[test]
    fn a_clash_the_hash_cannot_solve_names_both_tags() {
        let hashed = format!("p_2022_{:08x}", fnv1a(b"2022"));
        let err = map(&["2022", "p_2022", &hashed], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid `milvus1` configuration: partition tags `2022` and `{hashed}` both map \
                 to the Milvus 2.x partition `{hashed}`; give one of them its own name in \
                 `partition_names`"
            )
        );
    }

    #[test]
    fn error_mode_names_the_tag_and_the_name_it_would_get() {
        let tags = BTreeSet::from(["2023-q1".to_string()]);
        let err = map_tags(&tags, &BTreeMap::new(), InvalidPartitionTags::Error).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `milvus1` configuration: partition tag `2023-q1` is not a valid Milvus 2.x \
             partition name (letters, digits and _, not starting with a digit); map it in \
             `partition_names = { \"2023-q1\" = \"new_name\" }`, or remove \
             `invalid_partition_tags = \"error\"` to map it to `p_2023_q1`"
        );
    }
}
