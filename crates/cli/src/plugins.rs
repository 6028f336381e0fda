//! Links every plugin crate so its `inventory` registration survives the linker
//! (dtolnay/inventory#7: a crate nothing refers to is dropped, and its plugins with it).
//! Each line is behind the cargo feature of the same name.

#[cfg(feature = "sink-files")]
use vmig_sink_files as _;
#[cfg(feature = "sink-milvus2")]
use vmig_sink_milvus2 as _;
#[cfg(feature = "source-es")]
use vmig_source_es as _;
#[cfg(feature = "source-faiss")]
use vmig_source_faiss as _;
#[cfg(feature = "source-milvus1")]
use vmig_source_milvus1 as _;
#[cfg(feature = "source-milvus2")]
use vmig_source_milvus2 as _;
#[cfg(feature = "transforms")]
use vmig_transforms as _;

/// The plugin names this build must contain, per kind, for the enabled features.
#[cfg(test)]
fn expected() -> (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>) {
    let mut sources = Vec::new();
    let mut transforms = Vec::new();
    let mut sinks = Vec::new();
    if cfg!(feature = "source-faiss") {
        sources.push("faiss");
    }
    if cfg!(feature = "source-milvus1") {
        sources.push("milvus1");
    }
    if cfg!(feature = "source-milvus2") {
        sources.push("milvus2");
    }
    if cfg!(feature = "source-es") {
        sources.extend(["elasticsearch", "opensearch"]);
    }
    if cfg!(feature = "transforms") {
        transforms.extend(["cast", "collection", "drop", "filter", "rename", "select"]);
    }
    if cfg!(feature = "sink-files") {
        sinks.push("files");
    }
    if cfg!(feature = "sink-milvus2") {
        sinks.push("milvus2");
    }
    // The registry lists names sorted; so must this, whatever order the lines above are in.
    sources.sort_unstable();
    (sources, transforms, sinks)
}

#[cfg(test)]
mod tests {
    /// The registry of this binary holds exactly the plugins its features promise.
    #[test]
    fn every_enabled_plugin_is_registered() {
        let (sources, transforms, sinks) = super::expected();
        let sources_got = vmig_core::registry::sources()
            .unwrap()
            .keys()
            .copied()
            .collect::<Vec<_>>();
        let transforms_got = vmig_core::registry::transforms()
            .unwrap()
            .keys()
            .copied()
            .collect::<Vec<_>>();
        let sinks_got = vmig_core::registry::sinks()
            .unwrap()
            .keys()
            .copied()
            .collect::<Vec<_>>();
        assert_eq!(sources_got, sources);
        assert_eq!(transforms_got, transforms);
        assert_eq!(sinks_got, sinks);
    }
}
