//! Keeping a submitted job's local files inside the server's data root (`--data-root`).
//!
//! Every local path a job's plugins name ([`vmig::registry::SourceConfig::local_paths`], the
//! sink's alike) must resolve, symlinks followed, to a place inside the data root. A path with a
//! `..` component is refused outright (after a symlink, `..` does not mean what it says), and
//! without a data root no local path is allowed at all. The check runs before anything of the
//! job is opened.

use std::path::{Component, Path, PathBuf};

use vmig::config::Job;

/// The place `path` (relative: to `root`) resolves to, symlinks of its existing part followed;
/// an error saying why when that is not inside `root`.
///
/// # Errors
/// A sentence naming the path: `..` in it, outside the root, or the root unusable.
pub fn inside(root: &Path, path: &Path) -> Result<PathBuf, String> {
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "`{}` has a `..` component; name paths inside the data root without it",
            path.display()
        ));
    }
    let root = root
        .canonicalize()
        .map_err(|e| format!("the data root {} is not usable: {e}", root.display()))?;
    let joined = root.join(path);
    // The longest part that exists is resolved (symlinks followed); the rest is appended.
    let mut existing = joined.clone();
    let mut rest = Vec::new();
    while existing.symlink_metadata().is_err() {
        match existing.file_name() {
            Some(name) => rest.push(name.to_os_string()),
            None => break,
        }
        if !existing.pop() {
            break;
        }
    }
    let mut real = existing
        .canonicalize()
        .map_err(|e| format!("`{}` cannot be resolved: {e}", path.display()))?;
    real.extend(rest.iter().rev());
    if real.starts_with(&root) {
        Ok(real)
    } else {
        Err(format!(
            "`{}` resolves to {}, outside the data root {}",
            path.display(),
            real.display(),
            root.display()
        ))
    }
}

/// Checks every local path of `job` against `root`; `None`: no local path is allowed.
///
/// # Errors
/// The first refusal, naming the table and option (`[source] path: …`).
pub fn check_job(job: &Job, root: Option<&Path>) -> Result<(), String> {
    let named = job
        .source
        .local_paths()
        .into_iter()
        .map(|(o, p)| ("[source]", o, p))
        .chain(
            job.sink
                .local_paths()
                .into_iter()
                .map(|(o, p)| ("[sink]", o, p)),
        );
    for (table, option, path) in named {
        let checked = match root {
            Some(root) => inside(root, &path).map(drop),
            None => Err(format!(
                "`{}` is a local path, and this server reads and writes none (it was started without `--data-root`)",
                path.display()
            )),
        };
        checked.map_err(|why| format!("{table} {option}: {why}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/x.faiss"), b"x").unwrap();
        let real_root = root.canonicalize().unwrap();
        assert_eq!(
            inside(&root, Path::new("data/x.faiss")).unwrap(),
            real_root.join("data/x.faiss")
        );
        // Not there yet (an output directory): fine inside.
        assert_eq!(
            inside(&root, Path::new("out/new/part")).unwrap(),
            real_root.join("out/new/part")
        );
        let abs_inside = real_root.join("data/x.faiss");
        assert!(inside(&root, &abs_inside).is_ok());
        let e = inside(&root, Path::new("/etc/passwd")).unwrap_err();
        assert!(
            e.starts_with("`/etc/passwd` resolves to /etc/passwd, outside the data root"),
            "{e}"
        );
        let e = inside(&root, Path::new("../../x")).unwrap_err();
        assert_eq!(
            e,
            "`../../x` has a `..` component; name paths inside the data root without it"
        );
        let e = inside(&root, Path::new("data/../../x")).unwrap_err();
        assert!(e.contains("has a `..` component"), "{e}");
        // A symlink out of the root, and a path through it.
        std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
        let e = inside(&root, Path::new("etc-link/passwd")).unwrap_err();
        assert!(
            e.starts_with("`etc-link/passwd` resolves to /etc/passwd, outside"),
            "{e}"
        );
        let e = inside(&root, Path::new("etc-link/not-there/y")).unwrap_err();
        assert!(e.contains("resolves to /etc/not-there/y, outside"), "{e}");
    }
}
