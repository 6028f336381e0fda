//! Records the enabled cargo features, so the crate can compare the plugins it linked against
//! them without a hand-kept list (cargo tells a build script each enabled feature as a
//! `CARGO_FEATURE_<NAME>` variable).

fn main() {
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(str::to_owned))
        .map(|f| f.to_ascii_lowercase().replace('_', "-"))
        .filter(|f| f != "default")
        .collect();
    features.sort();
    println!(
        "cargo:rustc-env=VMIG_ENABLED_FEATURES={}",
        features.join(",")
    );
}
