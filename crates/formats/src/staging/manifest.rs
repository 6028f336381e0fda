//! Reading a `manifest.json` of vmig's staging output back: the units and files it lists. The
//! `files` sink writes it (and reads a previous one before replacing it); the `files` source
//! reads exactly the files it lists when pointed at such a directory. Keys this reader does not
//! know are ignored, so every manifest version reads.

use serde::Deserialize;

/// The file name of the manifest in an output directory.
pub const MANIFEST: &str = "manifest.json";

/// A `manifest.json`, as far as readers of it need: which run wrote it, in which format, and
/// which files each unit holds.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestListing {
    /// The manifest layout's version (its presence is what marks a vmig manifest).
    pub vmig_manifest: u32,
    /// The run that wrote it (manifests before run ids have none).
    #[serde(default)]
    pub run_id: Option<String>,
    /// `parquet`, `numpy` or `json` (manifests before the key have none).
    #[serde(default)]
    pub format: Option<String>,
    /// The units, in order.
    pub files: Vec<ManifestUnit>,
    /// Rows it says it holds.
    #[serde(default)]
    pub total_rows: u64,
    /// Bytes it says it holds.
    #[serde(default)]
    pub total_bytes: u64,
}

/// One unit of a manifest: a file (Parquet, JSON) or a directory of `.npy` files.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestUnit {
    /// The unit, relative to the output directory.
    pub path: String,
    /// The target partition its rows belong in, if any.
    #[serde(default)]
    pub partition: Option<String>,
    /// Its files, relative to the output directory.
    pub files: Vec<String>,
}

impl ManifestListing {
    /// Reads `bytes` as a manifest.
    ///
    /// # Errors
    /// When they are not JSON of a vmig manifest (no `vmig_manifest` or `files`).
    pub fn parse(bytes: &[u8]) -> serde_json::Result<ManifestListing> {
        serde_json::from_slice(bytes)
    }

    /// Every file of every unit, in order.
    pub fn all_files(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .flat_map(|u| u.files.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_sink_writes_and_nothing_else() {
        let m = ManifestListing::parse(
            br#"{"vmig_manifest":1,"run_id":"r","format":"numpy","schema":{},"files":[{"path":"part-00000","files":["part-00000/id.npy","part-00000/vector.npy"],"rows":3,"bytes":9}],"total_rows":3,"total_bytes":9}"#,
        )
        .unwrap();
        assert_eq!(m.format.as_deref(), Some("numpy"));
        assert_eq!(
            m.all_files().collect::<Vec<_>>(),
            ["part-00000/id.npy", "part-00000/vector.npy"]
        );
        assert!(ManifestListing::parse(br#"{"files":[]}"#).is_err());
    }
}
