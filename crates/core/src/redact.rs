//! Keeping secrets out of every output: the one place that decides what a secret is and masks it.
//!
//! Three layers, from the most precise to the last line of defence:
//!
//! * **By key.** [`is_secret_key`] says which option names hold secrets (`password`, `token`,
//!   `api_key`, `aws_secret_access_key`, …). [`serialize_secret`] and [`serialize_redacted`] are
//!   the `serialize_with` helpers plugin configs use, so what `vmig plan` and `--json` print never
//!   holds a secret value; [`debug_json`] (via [`redacted_debug!`](crate::redacted_debug)) makes
//!   `Debug` show the same redacted form.
//! * **By URL.** [`url()`] replaces the whole user-info of a URL with `***`
//!   (`http://root:secret@host:19530` → `http://***@host:19530`); [`json`] does that to every
//!   string of a JSON value and masks the values of secret keys.
//! * **By value.** When a plugin configuration is parsed, [`register_in_json`] records the values
//!   of its secret keys and the passwords of its URLs in a process-wide set ([`register`]; the
//!   CLI also registers secret-named environment variables with [`register_env`]). [`text`]
//!   masks URL user-infos and every registered value in arbitrary text; front ends pass
//!   everything they print (errors, JSON, plans, log lines) through it.
//!
//! A value that is only a reference to an environment variable (`${MILVUS_PASSWORD}`, as in the
//! plugins' example configurations) is shown as it is: it names a secret, it is not one.
//!
//! Values shorter than [`MIN_SECRET_LEN`] bytes are not registered: masking every `ab` in every
//! message would make output unreadable. Nor are [`PUBLIC_DEFAULTS`], passwords that products
//! document as their defaults (Milvus's `root` / `Milvus`): printing them reveals nothing, while
//! masking them would turn every "Milvus" in every message into `***`. Both are still masked by
//! key and by URL.

#[cfg(test)]
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{PoisonError, RwLock};

use serde::{Serialize, Serializer};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Shortest value [`register`] accepts.
pub const MIN_SECRET_LEN: usize = 4;

/// Default passwords that their products publish, never scrubbed from free text (see the module
/// docs); still masked by key and by URL.
pub const PUBLIC_DEFAULTS: &[&str] = &["Milvus"];

/// Registered secrets, longest first (so a secret containing another is masked whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Whether an option or environment variable named `key` holds a secret (case-insensitive):
/// a name containing `password`, `passwd`, `secret`, `token`, `credential`, `private`, `api_key`,
/// `apikey` or `sas`, or ending in `key` / `key_id` as access and account keys do
/// (`aws_access_key_id`, `azure_storage_account_key`) — but not `primary_key` or
/// `partition_key`, which name fields.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let words = [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "private",
        "api_key",
        "apikey",
        "sas",
    ];
    if words.iter().any(|w| k.contains(w)) {
        return true;
    }
    let keyish = k == "key" || k.ends_with("_key") || k.ends_with("_key_id");
    keyish
        && !["primary_key", "partition_key", "clustering_key"]
            .iter()
            .any(|f| k.ends_with(f))
}

/// Whether `s` is exactly one `${NAME}` reference (never expanded: shown as it is).
fn is_env_reference(s: &str) -> bool {
    s.strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(|name| {
            !name.is_empty() && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
        })
}

/// Where the user-info of the URL `s` is: the byte range between `://` and the last `@` of the
/// authority (which ends at the first `/`, `?` or `#`), if there is one.
fn userinfo_range(s: &str) -> Option<std::ops::Range<usize>> {
    let start = s.find("://")? + 3;
    let authority_end = s[start..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| start + i);
    let at = s[start..authority_end].rfind('@')? + start;
    Some(start..at)
}

/// `s` with the user-info of its URL replaced by [`MASK`] (`http://***@host:19530`); anything
/// else is returned unchanged.
pub fn url(s: &str) -> String {
    match userinfo_range(s) {
        Some(r) => format!("{}{MASK}{}", &s[..r.start], &s[r.end..]),
        None => s.to_string(),
    }
}

/// Splits the user-info off the URL `s`: the URL without it and the user-info (`user:password`),
/// if any. For clients that send credentials in headers rather than in the URL.
pub fn split_userinfo(s: &str) -> (String, Option<&str>) {
    match userinfo_range(s) {
        Some(r) => (
            format!("{}{}", &s[..r.start], &s[r.end + 1..]),
            Some(&s[r.clone()]),
        ),
        None => (s.to_string(), None),
    }
}

/// Adds `secret` (and its percent-decoded form) to the values [`text`] masks. Values shorter
/// than [`MIN_SECRET_LEN`] bytes are ignored.
pub fn register(secret: &str) {
    let decoded = percent_encoding::percent_decode_str(secret).decode_utf8_lossy();
    for s in [secret, decoded.as_ref()] {
        if s.len() < MIN_SECRET_LEN || PUBLIC_DEFAULTS.contains(&s) {
            continue;
        }
        let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
        if !secrets.iter().any(|known| known == s) {
            secrets.push(s.to_string());
            secrets.sort_by_key(|known| std::cmp::Reverse(known.len()));
        }
    }
}

/// Registers the user-info of a URL (whole, and its password part).
fn register_userinfo(s: &str) {
    if let Some(r) = userinfo_range(s) {
        let info = &s[r];
        register(info);
        if let Some((_, password)) = info.split_once(':') {
            register(password);
        }
    }
}

/// Registers every secret in a configuration value: the string values of secret keys
/// ([`is_secret_key`]) and the user-info of every URL, at any depth.
pub fn register_in_json(value: &serde_json::Value) {
    match value {
        serde_json::Value::String(s) => register_userinfo(s),
        serde_json::Value::Array(items) => items.iter().for_each(register_in_json),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if is_secret_key(k) => {
                        register(s);
                        register_userinfo(s);
                    }
                    other => register_in_json(other),
                }
            }
        }
        _ => {}
    }
}

/// Registers the values of the environment variables whose names look secret
/// ([`is_secret_key`]: `MILVUS_PASSWORD`, `AWS_SECRET_ACCESS_KEY`, `ES_API_KEY`, …).
pub fn register_env() {
    for (name, value) in std::env::vars_os() {
        if let (Some(name), Some(value)) = (name.to_str(), value.to_str()) {
            if is_secret_key(name) {
                register(value);
            }
        }
    }
}

/// Masks URL user-infos in free text: each `scheme://` followed by an authority holding `@`
/// (the authority ends at whitespace, a quote, `/`, `?` or `#`).
fn mask_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let start = i + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>')
            })
            .unwrap_or(after.len());
        match after[..end].rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                rest = &after[at..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// `s` with every URL user-info and every registered secret replaced by [`MASK`].
pub fn text(s: &str) -> String {
    let mut out = mask_urls(s);
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// Redacts a JSON value in place: the values of secret keys become [`MASK`] (nulls stay null),
/// and every other string goes through [`text`].
pub fn json(value: &mut serde_json::Value) {
    mask_json(value, &text);
}

/// Redacts a JSON value in place by key and by URL only: the values of secret keys become
/// [`MASK`] as in [`json`], URL user-infos in every other string become [`MASK`], and nothing
/// else changes. Unlike [`json`] it never consults the registered secrets, so its result
/// depends on `value` alone — what a fingerprint of a configuration needs.
pub fn json_by_key_and_url(value: &mut serde_json::Value) {
    mask_json(value, &mask_urls);
}

/// Masks the values of secret keys and passes every other string through `strings`.
fn mask_json(value: &mut serde_json::Value, strings: &dyn Fn(&str) -> String) {
    match value {
        serde_json::Value::String(s) => *s = strings(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| mask_json(v, strings)),
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let reference = v.as_str().is_some_and(is_env_reference);
                if is_secret_key(k) && !v.is_null() && !v.is_boolean() && !reference {
                    *v = serde_json::Value::String(MASK.into());
                } else {
                    mask_json(v, strings);
                }
            }
        }
        _ => {}
    }
}

/// `value` serialised to JSON and redacted with [`json`]; `null` if it does not serialise.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    json(&mut v);
    v
}

/// `serialize_with` helper for a secret (`password`, `token`, …): `Some` serialises as
/// [`MASK`] (or as the `${NAME}` reference it still is in an example), `None` as none.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize_secret<S: Serializer>(
    value: &Option<String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(v) if is_env_reference(v) => s.serialize_str(v),
        Some(_) => s.serialize_str(MASK),
        None => s.serialize_none(),
    }
}

/// `serialize_with` helper for anything that may hold a URL with credentials or a map of
/// options (`uri`, `url`, `meta`, `storage = { … }`): serialises the value redacted by [`json`],
/// so URL user-infos and the values of secret keys become [`MASK`].
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize_redacted<T: Serialize, S: Serializer>(
    value: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    to_json(value).serialize(s)
}

/// Writes `value` as `name {redacted JSON}`: a `Debug` that shows what `Serialize` shows, with
/// every secret masked. Use it through [`redacted_debug!`](crate::redacted_debug).
///
/// # Errors
/// Whatever the formatter reports.
pub fn debug_json<T: Serialize + ?Sized>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    value: &T,
) -> fmt::Result {
    write!(f, "{name} {}", to_json(value))
}

/// Implements `Debug` for a `Serialize` config type through [`debug_json`], so `{:?}` shows the
/// redacted configuration: `vmig_core::redacted_debug!(MyConfig);`.
#[macro_export]
macro_rules! redacted_debug {
    ($config:ty) => {
        impl ::std::fmt::Debug for $config {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                $crate::redact::debug_json(f, stringify!($config), self)
            }
        }
    };
}

/// The registered secrets, sorted.
#[cfg(test)]
fn registered() -> BTreeSet<String> {
    SECRETS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_whole_userinfo() {
        assert_eq!(
            url("http://root:secret@host:19530"),
            "http://***@host:19530"
        );
        assert_eq!(
            url("mysql://milvus:s3cret@db.local:3306/milvus?x=a@b"),
            "mysql://***@db.local:3306/milvus?x=a@b"
        );
        assert_eq!(url("http://host:19530/a@b"), "http://host:19530/a@b");
        assert_eq!(url("not a url"), "not a url");
        assert!(!url("mysql://u:p w@@").contains("p w"));
        assert_eq!(
            split_userinfo("http://root:secret@host:19530/x"),
            ("http://host:19530/x".to_string(), Some("root:secret"))
        );
        assert_eq!(split_userinfo("h:1"), ("h:1".to_string(), None));
    }

    #[test]
    fn secret_keys() {
        for k in [
            "password",
            "token",
            "api_key",
            "bearer_token",
            "aws_secret_access_key",
            "aws_access_key_id",
            "AWS_SESSION_TOKEN",
            "azure_storage_account_key",
            "azure_storage_sas_key",
            "google_service_account_key",
            "MILVUS_PASSWORD",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "uri",
            "user",
            "primary_key",
            "partition_key",
            "sparse_keys",
            "aws_region",
            "path",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn text_masks_urls_and_registered_values() {
        register("hunter2-registered");
        register("ab");
        let t = text(
            "cannot reach Milvus at http://root:pw@h:1: refused; \
             token hunter2-registered; ab; see https://example.com/x",
        );
        assert_eq!(
            t,
            "cannot reach Milvus at http://***@h:1: refused; token ***; ab; see https://example.com/x"
        );
        assert!(registered().contains("hunter2-registered"));
        assert!(!registered().contains("ab"));
    }

    #[test]
    fn registering_a_config_finds_keys_and_url_passwords() {
        register_in_json(&serde_json::json!({
            "uri": "http://root:Pw-from-uri@host:19530",
            "nested": { "api_key": "Key-from-config" },
            "list": ["mysql://u:Pw%40encoded@db/m"],
            "user": "plain-user-name",
        }));
        let all = registered();
        for s in [
            "Pw-from-uri",
            "root:Pw-from-uri",
            "Key-from-config",
            "Pw%40encoded",
            "Pw@encoded",
        ] {
            assert!(all.contains(s), "{s} not registered: {all:?}");
        }
        assert!(!all.contains("plain-user-name"));
        assert_eq!(text("x Pw@encoded y"), "x *** y");
    }

    #[test]
    fn json_masks_secret_keys_and_urls_at_any_depth() {
        let mut v = serde_json::json!({
            "uri": "http://root:secret@h:19530", "token": "t0k", "password": null,
            "api_key": "${ES_API_KEY}", "bearer_token": "${NOT CLOSED",
            "user": "u", "primary_key": "id",
            "storage": {"aws_secret_access_key": "s", "aws_access_key_id": "a", "aws_region": "r"},
            "url": ["https://elastic:pw@es:9200", "https://es2:9200"],
        });
        json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "uri": "http://***@h:19530", "token": "***", "password": null,
                "api_key": "${ES_API_KEY}", "bearer_token": "***",
                "user": "u", "primary_key": "id",
                "storage": {"aws_secret_access_key": "***", "aws_access_key_id": "***", "aws_region": "r"},
                "url": ["https://***@es:9200", "https://es2:9200"],
            })
        );
    }

    #[test]
    fn json_by_key_and_url_ignores_registered_values() {
        register("registered-elsewhere");
        let mut v = serde_json::json!({
            "path": "/data/registered-elsewhere/out",
            "uri": "http://root:pw@h:19530",
            "storage": {"aws_secret_access_key": "s3cr3t", "aws_region": "r"},
        });
        json_by_key_and_url(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "path": "/data/registered-elsewhere/out",
                "uri": "http://***@h:19530",
                "storage": {"aws_secret_access_key": "***", "aws_region": "r"},
            })
        );
    }

    #[test]
    fn serialize_and_debug_helpers_redact() {
        #[derive(serde::Serialize)]
        struct C {
            #[serde(serialize_with = "serialize_redacted")]
            uri: String,
            #[serde(serialize_with = "serialize_secret")]
            password: Option<String>,
            #[serde(serialize_with = "serialize_redacted")]
            storage: std::collections::BTreeMap<String, String>,
        }
        crate::redacted_debug!(C);
        let c = C {
            uri: "http://root:verysecret@h:1".into(),
            password: Some("verysecret2".into()),
            storage: [(
                "aws_secret_access_key".to_string(),
                "verysecret3".to_string(),
            )]
            .into(),
        };
        let shown = format!("{} {c:?}", serde_json::to_string(&c).unwrap_or_default());
        assert!(!shown.contains("verysecret"), "{shown}");
        assert!(
            shown.contains(" C {") && shown.contains("\"password\":\"***\""),
            "{shown}"
        );
        assert!(shown.contains("http://***@h:1"), "{shown}");
    }

    #[test]
    fn published_default_passwords_stay_readable_in_free_text() {
        register("Milvus");
        assert_eq!(text("Milvus 2.3.5 refused"), "Milvus 2.3.5 refused");
        assert_eq!(url("http://root:Milvus@h:19530"), "http://***@h:19530");
        assert!(is_secret_key("password"));
    }
}
