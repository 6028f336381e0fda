//! Overwrite detection: what the previous output means for this run (`overwrite`), whether a
//! new file would land on something the previous manifest does not list, and which names are
//! vmig's own (so a target partition folder cannot take one).

use vmig_core::store::StoreLocation;
use vmig_core::{Error, Result};

use crate::guard::{self, Previous};
use crate::local;
use crate::manifest::MANIFEST;
use crate::remote::Remote;
use crate::sink::{blocking_io, PLUGIN};

/// The previous output as found, or the refusal when `overwrite` is off.
pub(crate) fn admit(
    previous: Option<Previous>,
    overwrite: bool,
    display: &str,
) -> Result<Option<Previous>> {
    match previous {
        Some(p) if !overwrite => Err(p.refusal(display)),
        other => Ok(other),
    }
}

/// Refuses the commit when a new file's name is taken in `target` by a file (object) that the
/// previous manifest does not list, naming them.
///
/// # Errors
/// That refusal; when the target cannot be listed.
pub(crate) async fn refuse_conflicts(
    target: &StoreLocation,
    new_files: &[String],
    previous: Option<&Previous>,
) -> Result<()> {
    let taken = match target.local.clone() {
        Some(dir) => {
            let (files, previous) = (new_files.to_vec(), previous.cloned());
            blocking_io(move || Ok(local::conflicts(&dir, &files, previous.as_ref()))).await?
        }
        None => Remote::of(target).conflicts(new_files, previous).await?,
    };
    if taken.is_empty() {
        Ok(())
    } else {
        Err(guard::conflict_refusal(&target.display, &taken))
    }
}

/// A target partition name must be one plain folder name.
pub(crate) fn check_partition_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.len() > 255
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control())
        || is_vmig_name(name);
    if bad {
        return Err(Error::config(
            PLUGIN,
            format!(
                "target partition `{name}` cannot be used as a folder name (it must be non-empty, not start with `.`, not contain `/`, `\\`, `:` or control characters, and not look like a vmig output name)"
            ),
        ));
    }
    Ok(())
}

/// `manifest.json`, `part-00012.parquet`, `part-00012.json`, `part-00012` (NumPy) and the
/// temporary names of all of these.
fn is_vmig_name(name: &str) -> bool {
    if name == MANIFEST || name == format!(".{MANIFEST}.tmp") {
        return true;
    }
    if name.starts_with(".part-") && name.ends_with(".tmp") {
        return true;
    }
    let Some(rest) = name.strip_prefix("part-") else {
        return false;
    };
    let digits = rest.split('.').next().unwrap_or_default();
    let ext = &rest[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(ext, "" | ".parquet" | ".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_vmig_names() {
        for yes in [
            "manifest.json",
            "part-00000.parquet",
            "part-00012.json",
            "part-00003",
            "part-123456.parquet",
            ".part-00000.parquet.tmp",
            ".part-00001.tmp",
            ".manifest.json.tmp",
        ] {
            assert!(is_vmig_name(yes), "{yes}");
        }
        for no in [
            "part-.parquet",
            "part-0a.json",
            "notes.txt",
            "part-00000.csv",
            "xpart-00000.json",
            "part-1.parquet.bak",
        ] {
            assert!(!is_vmig_name(no), "{no}");
        }
    }
}
