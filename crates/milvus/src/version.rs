//! What a Milvus target is and which version it runs, so that callers pick the right path
//! (the 2.3 gRPC `Import` or the 2.4+ REST import jobs) and refuse, before any row is written,
//! a schema feature the target cannot hold.
//!
//! The version comes from `GetVersion` (`v2.3.5-lite`, `v2.5.4`, `2.6.0-rc1` …). Some targets do
//! not give one: milvus-lite 2.5.1 answers `UNIMPLEMENTED`, milvus-lite 3.x reports
//! `milvus_lite-3.2.2`, and Zilliz Cloud's answer is not a Milvus release number. Those are
//! [`ServerVersion::unknown`]: [`ServerVersion::at_least`] then answers `None`, and callers let
//! the server itself accept or refuse (and surface its answer) instead of guessing. Zilliz Cloud
//! is recognised by its endpoint's host name, not by its version.

use std::fmt;

/// Which product serves the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// A Milvus server (standalone or cluster, including the embedded `-lite` standalone).
    Milvus,
    /// Zilliz Cloud (a `*.zillizcloud.com` or `*.zilliz.com.cn` endpoint).
    ZillizCloud,
}

/// The target's product and version, as far as it says ([`crate::MilvusClient::server`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    kind: ServerKind,
    /// What `GetVersion` answered (empty when it is not implemented).
    raw: String,
    /// `(major, minor, patch)` when `raw` is a Milvus release number.
    release: Option<(u32, u32, u32)>,
}

impl ServerVersion {
    /// The version of the server at `uri` that answered `GetVersion` with `raw` (`None`: the
    /// RPC is not implemented there).
    pub fn new(uri: &str, raw: Option<&str>) -> ServerVersion {
        let raw = raw.unwrap_or_default().trim().to_string();
        ServerVersion {
            kind: kind_of(uri),
            release: parse_release(&raw),
            raw,
        }
    }

    /// A target whose version is not known (tests, or a server that did not say).
    pub fn unknown(kind: ServerKind) -> ServerVersion {
        ServerVersion {
            kind,
            raw: String::new(),
            release: None,
        }
    }

    /// The product.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Whether the target is Zilliz Cloud.
    pub fn is_zilliz(&self) -> bool {
        self.kind == ServerKind::ZillizCloud
    }

    /// What `GetVersion` answered (empty when it is not implemented).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// `(major, minor, patch)`, when the server gave a Milvus release number.
    pub fn release(&self) -> Option<(u32, u32, u32)> {
        self.release
    }

    /// Whether the server is release `major.minor` or newer; `None` when it did not say which
    /// release it is (then only the server itself can accept or refuse a feature).
    pub fn at_least(&self, major: u32, minor: u32) -> Option<bool> {
        self.release.map(|(ma, mi, _)| (ma, mi) >= (major, minor))
    }

    /// A refusal for a feature that needs release `major.minor`, when the server says it is
    /// older; `None` when it is new enough or did not say. The message names the feature, the
    /// release it needs and the server's own version.
    pub fn require(&self, feature: &str, major: u32, minor: u32) -> Option<String> {
        match self.at_least(major, minor) {
            Some(false) => Some(format!(
                "{feature} needs Milvus {major}.{minor} or newer, and the target is {self}"
            )),
            _ => None,
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let product = match self.kind {
            ServerKind::Milvus => "Milvus",
            ServerKind::ZillizCloud => "Zilliz Cloud",
        };
        match (self.release, self.raw.is_empty()) {
            (Some(_), _) => write!(f, "{product} {}", self.raw),
            (None, true) => write!(f, "{product} (version not reported)"),
            (None, false) => write!(f, "{product} (version `{}`)", self.raw),
        }
    }
}

/// The host of an endpoint `uri` (with or without a scheme, user-info or port), lower-cased.
pub fn host_of(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    host_port
        .rsplit_once(':')
        .map_or(host_port, |(h, _)| h)
        .to_ascii_lowercase()
}

/// The cluster id a Zilliz Cloud endpoint's host starts with (`in01-0123abcd` of
/// `in01-0123abcd.aws-us-west-2.vectordb.zillizcloud.com`): `in`, two digits, `-` and letters or
/// digits; `None` for any other first label.
pub fn zilliz_cluster_id(host: &str) -> Option<String> {
    let label = host.split('.').next()?;
    let (head, tail) = label.split_once('-')?;
    let numbered =
        head.len() == 4 && head.starts_with("in") && head[2..].bytes().all(|b| b.is_ascii_digit());
    (numbered && !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| label.to_string())
}

/// Zilliz Cloud by its endpoint's host; anything else is Milvus.
fn kind_of(uri: &str) -> ServerKind {
    let host = host_of(uri);
    let zilliz = [".zillizcloud.com", ".zilliz.com.cn", ".zilliz.com"]
        .iter()
        .any(|suffix| host.ends_with(suffix));
    if zilliz {
        ServerKind::ZillizCloud
    } else {
        ServerKind::Milvus
    }
}

/// `v2.3.5-lite`, `2.5.4`, `v2.6.0-rc1` → `(2, 3, 5)` …; anything that does not start with a
/// `major.minor` number (`milvus_lite-3.2.2`, a cloud build name) → `None`. The one parser of
/// Milvus version strings.
pub fn parse_release(raw: &str) -> Option<(u32, u32, u32)> {
    let s = raw.strip_prefix(['v', 'V']).unwrap_or(raw);
    let core = s.split(['-', '+', ' ']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_from_what_servers_report() {
        let v = |raw: &str| ServerVersion::new("http://127.0.0.1:19530", Some(raw)).release();
        assert_eq!(v("v2.3.5-lite"), Some((2, 3, 5)));
        assert_eq!(v("v2.5.4"), Some((2, 5, 4)));
        assert_eq!(v("2.6.0-rc1"), Some((2, 6, 0)));
        assert_eq!(v("v2.4"), Some((2, 4, 0)));
        assert_eq!(v("milvus_lite-3.2.2"), None);
        assert_eq!(v(""), None);
        assert_eq!(v("v2.x.1"), None);
        assert_eq!(v("2.5.4.1"), None);
    }

    #[test]
    fn at_least_compares_major_then_minor() {
        let v = ServerVersion::new("http://h:19530", Some("v2.4.13"));
        assert_eq!(v.at_least(2, 4), Some(true));
        assert_eq!(v.at_least(2, 3), Some(true));
        assert_eq!(v.at_least(2, 5), Some(false));
        assert_eq!(v.at_least(3, 0), Some(false));
        assert_eq!(
            ServerVersion::new("http://h:19530", Some("v3.0.0")).at_least(2, 6),
            Some(true)
        );
        let unimplemented = ServerVersion::new("http://h:19530", None);
        assert_eq!(unimplemented.at_least(2, 4), None);
        assert_eq!(unimplemented.require("nullable fields", 2, 5), None);
    }

    #[test]
    fn require_names_feature_release_and_target() {
        let v = ServerVersion::new("http://h:19530", Some("v2.3.5-lite"));
        assert_eq!(
            v.require("sparse vectors (field `s`)", 2, 4).as_deref(),
            Some("sparse vectors (field `s`) needs Milvus 2.4 or newer, and the target is Milvus v2.3.5-lite")
        );
        assert_eq!(v.require("float vectors", 2, 0), None);
    }

    #[test]
    fn zilliz_is_known_by_its_host() {
        let z = |uri: &str| ServerVersion::new(uri, Some("v2.5.4")).is_zilliz();
        assert!(z(
            "https://in01-abc.aws-us-west-2.vectordb.zillizcloud.com:19530"
        ));
        assert!(z(
            "https://in03-x.serverless.ali-cn-hangzhou.cloud.zilliz.com.cn"
        ));
        assert!(z("HTTPS://IN01-ABC.API.GCP-US-WEST1.ZILLIZCLOUD.COM:443/"));
        assert!(!z("http://127.0.0.1:19530"));
        assert!(!z("https://zillizcloud.com.evil.example:19530"));
        assert!(!z("http://milvus.internal:19530"));
    }

    #[test]
    fn display_says_what_was_reported() {
        let m = ServerVersion::new("http://h:19530", Some("v2.3.5-lite"));
        assert_eq!(m.to_string(), "Milvus v2.3.5-lite");
        let lite = ServerVersion::new("http://h:19530", None);
        assert_eq!(lite.to_string(), "Milvus (version not reported)");
        let z = ServerVersion::new("https://a.zillizcloud.com", Some("Zilliz Cloud 2024.1"));
        assert_eq!(
            z.to_string(),
            "Zilliz Cloud (version `Zilliz Cloud 2024.1`)"
        );
    }
}

#[cfg(test)]
mod zilliz_tls_tests {
    use crate::ConnectOptions;

    #[test]
    fn a_zilliz_hosts_first_label_is_its_cluster_id() {
        let id = |uri: &str| super::zilliz_cluster_id(&super::host_of(uri));
        assert_eq!(
            id("https://in01-0123abcd.aws-us-west-2.vectordb.zillizcloud.com:19530"),
            Some("in01-0123abcd".into())
        );
        assert_eq!(
            id("in03-9f8e7d.serverless.gcp-us-west1.cloud.zilliz.com"),
            Some("in03-9f8e7d".into())
        );
        assert_eq!(
            id("https://db-admin@IN05-AB12.api.ali-cn-hangzhou.zilliz.com.cn"),
            Some("in05-ab12".into())
        );
        for other in [
            "https://my-proxy.example.com",
            "https://in1-abc.zillizcloud.com",
            "https://inxx-abc.zillizcloud.com",
            "https://in01-.zillizcloud.com",
            "https://in01-a_b.zillizcloud.com",
        ] {
            assert_eq!(id(other), None, "{other}");
        }
    }

    /// Zilliz Cloud serves TLS only: its host without a scheme is reached over https; any
    /// other host without a scheme stays plain, and a scheme given is kept.
    #[test]
    fn a_zilliz_host_without_a_scheme_is_tls() {
        let uri = |u: &str| ConnectOptions::new(u.to_string()).normalized_uri();
        assert_eq!(
            uri("in03-abc.serverless.gcp-us-west1.cloud.zilliz.com:443"),
            "https://in03-abc.serverless.gcp-us-west1.cloud.zilliz.com:443"
        );
        assert_eq!(
            uri("in01-abc.aws-us-west-2.vectordb.zillizcloud.com:19530/"),
            "https://in01-abc.aws-us-west-2.vectordb.zillizcloud.com:19530"
        );
        assert_eq!(uri("milvus.internal:19530"), "http://milvus.internal:19530");
        assert_eq!(uri("http://127.0.0.1:19530"), "http://127.0.0.1:19530");
    }
}
