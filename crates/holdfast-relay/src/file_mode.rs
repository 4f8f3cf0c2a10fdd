//! Who may read the relay's files. A new database or secret is created readable and
//! writable by its owner only (mode 0600, whatever the umask): the database holds every
//! space's changes, the secret signs tokens. An existing file keeps its mode; one that
//! others can read is warned about at start (the database, [`warn_if_readable`]) or
//! refused (the secret, in `secret.rs`).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

#[cfg(test)]
mod tests;

/// The mode of every file the relay creates: its owner reads and writes it, no one else.
pub(crate) const PRIVATE_MODE: u32 = 0o600;

/// Options that create a new file with [`PRIVATE_MODE`], failing if the file exists: it is
/// never readable by others, even for a moment.
pub(crate) fn private_new() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_MODE);
    options
}

/// Creates an empty file at `path` with [`PRIVATE_MODE`] if there is none, for a library
/// (redb) to fill; an existing file is left as it is.
pub(crate) fn create_private(path: &Path) -> io::Result<()> {
    match private_new().open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The permission bits of a file other users may read or write; `None` when only its owner
/// may (and on systems without Unix modes).
pub(crate) fn exposed_mode(metadata: &fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

/// Logs a warning, in words, when other users can read the `what` (e.g. "database") at
/// `path`. A file that cannot be looked at is left to whoever opens it next.
pub(crate) fn warn_if_readable(path: &Path, what: &str) {
    let Some(mode) = fs::metadata(path).ok().as_ref().and_then(exposed_mode) else {
        return;
    };
    tracing::warn!(
        path = %path.display(),
        "the {what} {} can be read by other users (mode {mode:04o}): chmod 600 it",
        path.display()
    );
}
