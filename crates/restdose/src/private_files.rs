//! Files that hold personal data or keys are the service user's only, whatever the umask:
//! directories the service creates get 0700, its files 0600. Directories and key files the
//! operator made are left as they are, with a warning when other users may read them.

use std::path::Path;

use crate::Config;

/// Creates `dir` and any missing parents with mode 0700.
pub(crate) fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The permission bits of `path` that let other users in (group or others), when it exists.
fn open_bits(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Warns (log and, with text logs, stderr) about an existing data directory or key file that
/// other users may read. Nothing is changed: they may be the operator's on purpose.
pub fn warn_if_open(config: &Config) {
    let mut checks = vec![(config.data_dir.clone(), "data directory", "chmod 700")];
    if config.keys.is_none() {
        checks.push((config.keys_path(), "key file", "chmod 600"));
    }
    for (path, what, fix) in checks {
        if let Some(mode) = open_bits(&path) {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the {what} is open to other users: {fix} it"
            );
            if config.log_format != "json" {
                eprintln!(
                    "WARNING: the {what} {} has mode {mode:o}: other users on this machine may \
                     read it. Run `{fix} {}`.",
                    path.display(),
                    path.display()
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn created_directories_are_private_and_open_ones_are_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        for d in [root.path().join("a"), dir.clone()] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        assert_eq!(open_bits(&dir), None);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(open_bits(&dir), Some(0o755));
        assert_eq!(open_bits(&root.path().join("missing")), None);
    }
}
