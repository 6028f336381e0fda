//! Checks that a plugin configuration keeps its secrets out of `Debug` and `Serialize`.

use std::fmt::Debug;

use serde::Serialize;

/// Asserts that neither `{config:?}` nor its JSON contains any of `secrets`, and that both
/// contain each of `shown` (e.g. the redacted URI `http://***@h:19530`).
///
/// # Panics
/// When a secret shows or an expected text is missing, printing both forms.
pub fn assert_hidden<C: Debug + Serialize>(config: &C, secrets: &[&str], shown: &[&str]) {
    let json = serde_json::to_string(config).unwrap_or_else(|e| format!("<no JSON: {e}>"));
    for form in [format!("{config:?}"), json] {
        for s in secrets {
            assert!(!form.contains(s), "`{s}` shows in {form}");
        }
        for s in shown {
            assert!(form.contains(s), "`{s}` is missing from {form}");
        }
    }
}
