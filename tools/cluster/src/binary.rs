//! Finding the `mooncake_master` and `mooncake_store` executables.

use std::path::{Path, PathBuf};

use crate::Error;

/// File name of the master binary.
pub const MASTER_BINARY: &str = "mooncake_master";
/// File name of the store-node binary.
pub const STORE_BINARY: &str = "mooncake_store";

/// Locates the executable `name` and returns its path.
///
/// Searched in order: `bin_dir` when given, the directory in env `MC_BIN_DIR` when set, then
/// the directory of the running executable and that directory's parent. The last two cover
/// both `target/<profile>/mc-bench` (binaries are siblings) and integration tests, which run
/// from `target/<profile>/deps` while the binaries live in `target/<profile>`.
///
/// # Errors
/// [`Error::BinaryNotFound`], listing the searched directories and telling the reader to run
/// `cargo build --workspace --bins`.
pub fn find_binary(name: &str, bin_dir: Option<&Path>) -> Result<PathBuf, Error> {
    let file_name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let dirs = search_dirs(bin_dir);
    for dir in &dirs {
        let candidate = dir.join(&file_name);
        if is_executable_file(&candidate) {
            return Ok(candidate);
        }
    }
    let searched = dirs
        .iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::BinaryNotFound {
        name: name.to_string(),
        searched,
    })
}

/// The directories [`find_binary`] looks in, in order, without duplicates.
fn search_dirs(bin_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut push = |dir: PathBuf| {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    };
    if let Some(dir) = bin_dir {
        push(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("MC_BIN_DIR").filter(|dir| !dir.is_empty()) {
        push(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok();
    if let Some(exe_dir) = exe.as_deref().and_then(Path::parent) {
        push(exe_dir.to_path_buf());
        if let Some(parent) = exe_dir.parent() {
            push(parent.to_path_buf());
        }
    }
    dirs
}

/// True when `path` is a regular file someone may execute (a stale directory or a
/// non-executable file of the same name must not be picked).
fn is_executable_file(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            }
            #[cfg(not(unix))]
            {
                true
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::unique_temp_dir;

    #[test]
    fn missing_binary_error_says_how_to_build_it() {
        let dir = unique_temp_dir("mc-cluster-findbin").unwrap();
        let err = find_binary("mc_cluster_no_such_binary", Some(&dir)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("mc_cluster_no_such_binary"), "{message}");
        assert!(
            message.contains("cargo build --workspace --bins"),
            "{message}"
        );
        assert!(message.contains(&dir.display().to_string()), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn explicit_dir_is_searched_first_and_needs_an_executable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = unique_temp_dir("mc-cluster-findbin").unwrap();
        let path = dir.join("mc_cluster_fake_bin");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(find_binary("mc_cluster_fake_bin", Some(&dir)).is_err());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_binary("mc_cluster_fake_bin", Some(&dir)).unwrap(),
            path
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn search_includes_the_executable_dir_and_its_parent() {
        let exe_dir = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let dirs = search_dirs(Some(Path::new("/explicit")));
        assert_eq!(dirs[0], Path::new("/explicit"));
        assert!(dirs.contains(&exe_dir));
        assert!(dirs.contains(&exe_dir.parent().unwrap().to_path_buf()));
    }
}
