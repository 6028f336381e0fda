//! Which API a bulk import goes through ([`choose`]): Milvus 2.3's gRPC `Import`, or the REST
//! import jobs of Milvus 2.4+ and Zilliz Cloud.

use vmig_core::{Error, Result};
use vmig_milvus::ServerVersion;

use crate::{BulkApi, NAME};

/// The import path taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkPath {
    /// gRPC `Import`, one file (or NumPy set) per call.
    Grpc,
    /// REST import jobs, several files per job.
    Rest,
}

impl BulkPath {
    /// `grpc` or `rest`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkPath::Grpc => "grpc",
            BulkPath::Rest => "rest",
        }
    }
}

/// The path and why it was taken (logged at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkChoice {
    /// The path.
    pub path: BulkPath,
    /// Why, in words.
    pub why: String,
}

/// The import path for `api` on `server`:
///
/// | `bulk_api` | Milvus 2.3 | Milvus 2.4+ | Zilliz Cloud | release not reported |
/// |---|---|---|---|---|
/// | `auto` | gRPC | REST | REST | gRPC (logged) |
/// | `grpc` | gRPC | gRPC | gRPC | gRPC |
/// | `rest` | refused | REST | REST | REST |
///
/// # Errors
/// [`Error::Config`] for `rest` on a server that says it is older than 2.4, naming its version.
pub fn choose(api: BulkApi, server: &ServerVersion) -> Result<BulkChoice> {
    let choice = |path, why: String| Ok(BulkChoice { path, why });
    match api {
        BulkApi::Grpc => choice(BulkPath::Grpc, "`bulk_api = \"grpc\"`".into()),
        BulkApi::Rest => match server.require("`bulk_api = \"rest\"` (REST import jobs)", 2, 4) {
            Some(refusal) => Err(Error::config(
                NAME,
                format!("{refusal}; use `bulk_api = \"grpc\"` or `\"auto\"`"),
            )),
            None => choice(BulkPath::Rest, "`bulk_api = \"rest\"`".into()),
        },
        BulkApi::Auto if server.is_zilliz() => choice(
            BulkPath::Rest,
            format!("`bulk_api = \"auto\"` and the target is {server}"),
        ),
        BulkApi::Auto => match server.at_least(2, 4) {
            Some(true) => choice(
                BulkPath::Rest,
                format!("`bulk_api = \"auto\"` and the target is {server} (2.4 or newer)"),
            ),
            Some(false) => choice(
                BulkPath::Grpc,
                format!("`bulk_api = \"auto\"` and the target is {server} (before 2.4)"),
            ),
            None => choice(
                BulkPath::Grpc,
                format!("`bulk_api = \"auto\"` and the target is {server}, so its release is unknown: gRPC `Import` is the path every Milvus 2.x has; set `bulk_api = \"rest\"` for a 2.4+ server"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmig_milvus::ServerKind;

    fn milvus(raw: &str) -> ServerVersion {
        ServerVersion::new("http://127.0.0.1:19530", Some(raw))
    }

    fn zilliz() -> ServerVersion {
        ServerVersion::new(
            "https://in01-abc.aws-us-west-2.vectordb.zillizcloud.com:19530",
            Some("Zilliz Cloud 2024.1"),
        )
    }

    fn picked(api: BulkApi, server: &ServerVersion) -> (BulkPath, String) {
        let c = choose(api, server).unwrap_or_else(|e| panic!("{e}"));
        (c.path, c.why)
    }

    #[test]
    fn auto_picks_by_the_servers_release() {
        assert_eq!(
            picked(BulkApi::Auto, &milvus("v2.3.5")),
            (
                BulkPath::Grpc,
                "`bulk_api = \"auto\"` and the target is Milvus v2.3.5 (before 2.4)".into()
            )
        );
        assert_eq!(
            picked(BulkApi::Auto, &milvus("v2.4.0")),
            (
                BulkPath::Rest,
                "`bulk_api = \"auto\"` and the target is Milvus v2.4.0 (2.4 or newer)".into()
            )
        );
        assert_eq!(picked(BulkApi::Auto, &milvus("v2.6.1")).0, BulkPath::Rest);
        assert_eq!(
            picked(BulkApi::Auto, &zilliz()),
            (
                BulkPath::Rest,
                "`bulk_api = \"auto\"` and the target is Zilliz Cloud (version `Zilliz Cloud 2024.1`)"
                    .into()
            )
        );
        let unknown = ServerVersion::new("http://127.0.0.1:19530", None);
        assert_eq!(
            picked(BulkApi::Auto, &unknown),
            (BulkPath::Grpc, "`bulk_api = \"auto\"` and the target is Milvus (version not reported), so its release is unknown: gRPC `Import` is the path every Milvus 2.x has; set `bulk_api = \"rest\"` for a 2.4+ server".into())
        );
        assert_eq!(
            picked(
                BulkApi::Auto,
                &ServerVersion::unknown(ServerKind::ZillizCloud)
            )
            .0,
            BulkPath::Rest
        );
    }

    #[test]
    fn grpc_is_taken_as_asked_everywhere() {
        for s in [
            milvus("v2.3.5"),
            milvus("v2.5.4"),
            zilliz(),
            ServerVersion::unknown(ServerKind::Milvus),
        ] {
            assert_eq!(
                picked(BulkApi::Grpc, &s),
                (BulkPath::Grpc, "`bulk_api = \"grpc\"`".into())
            );
        }
    }

    #[test]
    fn rest_is_refused_on_2_3_naming_the_version_and_taken_elsewhere() {
        let err = choose(BulkApi::Rest, &milvus("v2.3.5-lite")).unwrap_err();
        assert!(err.is_config_error());
        assert_eq!(
            err.to_string(),
            "invalid `milvus2` configuration: `bulk_api = \"rest\"` (REST import jobs) needs Milvus 2.4 or newer, and the target is Milvus v2.3.5-lite; use `bulk_api = \"grpc\"` or `\"auto\"`"
        );
        for s in [
            milvus("v2.4.13"),
            zilliz(),
            ServerVersion::unknown(ServerKind::Milvus),
        ] {
            assert_eq!(
                picked(BulkApi::Rest, &s),
                (BulkPath::Rest, "`bulk_api = \"rest\"`".into())
            );
        }
    }
}
