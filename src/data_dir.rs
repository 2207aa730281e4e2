//! The node's data dir before anything opens it: created if missing, refused when it is a
//! file or cannot be made, and claimed for one node id (recorded in `<data-dir>/node_id`),
//! so that a node started with another id on it stops at once instead of running as a
//! member nobody knows, never ready. Every refusal is a [`ConfigError`] naming the field
//! to fix and where its value came from (the binary exits 2).

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};

/// The file recording which node a data dir belongs to.
pub const NODE_ID_FILE: &str = "node_id";

/// An I/O error's text without the `(os error N)` tail.
pub fn io_reason(e: &std::io::Error) -> String {
    let mut reason = e.to_string();
    if let Some(i) = reason.find(" (os error ") {
        reason.truncate(i);
    }
    reason
}

/// Creates the data dir (and its parents) unless it exists; refuses a path that is a file
/// or cannot be created. A new dir is made mode 0700 (an existing one is set so by
/// [`make_private`]): the store holds webhook secrets and operator passwords in plain
/// text, and with a umask of 022 its files would be readable by every local user.
pub fn prepare(cfg: &Config) -> Result<PathBuf, ConfigError> {
    let dir = cfg.data_dir();
    let refuse = |why: String| ConfigError::at("data_dir", &cfg.origins, why);
    if dir.exists() && !dir.is_dir() {
        return Err(refuse(format!(
            "{} is a file, not a directory",
            dir.display()
        )));
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(|e| {
        refuse(format!(
            "cannot create directory {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    Ok(dir)
}

/// Sets `dir` to mode 0700 when others could reach into it and this user owns it (a dir
/// from before this rule, or made by hand under a umask of 022), saying so in the log.
/// A dir owned by someone else is left alone with a warning. Called once the start can
/// no longer fail on a configuration value (those exit with one line and no log).
#[cfg(unix)]
pub fn make_private(dir: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        tracing::warn!(
            data_dir = %dir.display(), mode = format!("{mode:o}"), owner = meta.uid(),
            "data dir is readable by other users and not owned by this user; set it to 0700"
        );
        return;
    }
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        Ok(()) => tracing::info!(
            data_dir = %dir.display(), was = format!("{mode:o}"),
            "data dir was reachable by other users (it holds secrets): set it to 0700"
        ),
        Err(e) => tracing::warn!(
            data_dir = %dir.display(), error = %e,
            "cannot set the data dir to 0700; other users may read its secrets"
        ),
    }
}

/// Checks that `dir` belongs to this node (`cfg.node_id`), recording the id on first use.
/// A dir from before the record existed adopts the id it is started with.
pub fn claim(cfg: &Config, dir: &Path) -> Result<(), ConfigError> {
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(owner) if owner == cfg.node_id => Ok(()),
            Ok(owner) => Err(ConfigError::at(
                "node_id",
                &cfg.origins,
                format!(
                    "data dir {} belongs to node {owner}, not {} (start it with node_id \
                     {owner}, or give node {} a data_dir of its own)",
                    dir.display(),
                    cfg.node_id,
                    cfg.node_id
                ),
            )),
            Err(_) => Err(ConfigError::at(
                "data_dir",
                &cfg.origins,
                format!(
                    "{} does not hold a node id (want one integer, the id of the node the \
                     dir belongs to)",
                    path.display()
                ),
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_synced(&path, &format!("{}\n", cfg.node_id)).map_err(|e| {
                ConfigError::at(
                    "data_dir",
                    &cfg.origins,
                    format!("cannot write {}: {}", path.display(), io_reason(&e)),
                )
            })
        }
        Err(e) => Err(ConfigError::at(
            "data_dir",
            &cfg.origins,
            format!("cannot read {}: {}", path.display(), io_reason(&e)),
        )),
    }
}

/// The least free space on the data dir's filesystem a node starts with: one fjall journal
/// (64 MiB, the file it writes next) and room for a memtable flush. Below it the first
/// writes fail and the node stops right after saying it is ready (an audit: `node ready`,
/// then exit 1 after 38,478 log lines on a full disk).
pub const MIN_FREE_BYTES: u64 = 96 << 20;

/// Refuses a data dir whose filesystem has less than [`MIN_FREE_BYTES`] free (for this
/// user), naming the dir and what is free.
pub fn check_free_space(cfg: &Config, dir: &Path) -> Result<(), ConfigError> {
    match free_bytes(dir) {
        Ok(free) => enough_free(free).map_err(|why| {
            ConfigError::at(
                "data_dir",
                &cfg.origins,
                format!("{}: {why}", dir.display()),
            )
        }),
        // Not knowing is no reason to refuse: the writes will tell.
        Err(e) => {
            tracing::debug!(data_dir = %dir.display(), error = %e, "cannot read free space");
            Ok(())
        }
    }
}

/// Whether `free` bytes are enough to start, and if not the reason.
fn enough_free(free: u64) -> Result<(), String> {
    if free >= MIN_FREE_BYTES {
        return Ok(());
    }
    Err(format!(
        "no space left: {} MiB free on its filesystem, a node needs at least {} MiB to \
         start (free some space or move data_dir)",
        free >> 20,
        MIN_FREE_BYTES >> 20
    ))
}

/// Bytes free for an unprivileged user on the filesystem of `dir` (statvfs).
#[cfg(unix)]
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a plain struct that
    // statvfs fills; both outlive the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Free space is not checked where statvfs does not exist.
#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

/// Writes a small file and fsyncs it (and its directory), so a crash right after the
/// first start does not leave the dir without its owner.
fn write_synced(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Nothing to do where modes are not Unix modes.
#[cfg(not(unix))]
pub fn make_private(_dir: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(node_id: u64, dir: &Path) -> Config {
        Config {
            node_id,
            data_dir: Some(dir.to_path_buf()),
            ..Config::default()
        }
    }

    #[test]
    fn a_dir_is_claimed_once_and_refused_to_another_node() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("node-2");
        let two = cfg(2, &dir);
        let made = prepare(&two).expect("created");
        claim(&two, &made).expect("first claim");
        claim(&two, &made).expect("same node again");
        let five = Config {
            origins: crate::config::Origins::flags(&["node_id"]),
            ..cfg(5, &dir)
        };
        let shown = claim(&five, &made).expect_err("other node").to_string();
        assert!(
            shown.starts_with(&format!(
                "invalid config: field 'node_id' (flag --node-id): data dir {} belongs to node 2",
                dir.display()
            )),
            "{shown}"
        );
    }

    #[test]
    fn a_start_needs_some_free_space() {
        assert!(enough_free(MIN_FREE_BYTES).is_ok());
        let why = enough_free(5 << 20).expect_err("5 MiB");
        assert!(
            why.starts_with(
                "no space left: 5 MiB free on its filesystem, a node needs at least 96 MiB"
            ),
            "{why}"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(free_bytes(tmp.path()).expect("statvfs") > 0);
    }

    #[test]
    fn a_dir_without_a_record_adopts_the_node() {
        let tmp = tempfile::tempdir().expect("tempdir");
        claim(&cfg(3, tmp.path()), tmp.path()).expect("adopted");
        let text = std::fs::read_to_string(tmp.path().join(NODE_ID_FILE)).expect("record");
        assert_eq!(text.trim(), "3");
    }

    #[test]
    fn a_file_or_unmakeable_path_is_refused_naming_data_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("passwd");
        std::fs::write(&file, "x").expect("file");
        let shown = prepare(&cfg(1, &file)).expect_err("a file").to_string();
        assert!(
            shown.starts_with("invalid config: field 'data_dir': ") && shown.contains("is a file"),
            "{shown}"
        );
        let below_file = file.join("sub");
        let shown = prepare(&cfg(1, &below_file))
            .expect_err("below a file")
            .to_string();
        assert!(
            shown.starts_with("invalid config: field 'data_dir': cannot create directory"),
            "{shown}"
        );
    }
}
