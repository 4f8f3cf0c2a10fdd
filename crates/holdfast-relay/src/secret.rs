//! The secret that signs and verifies tokens: a file of hex text, created once, readable
//! only by its owner.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::file_mode;

#[cfg(test)]
mod tests;

/// Random bytes in a new secret, and the fewest an existing secret file may hold.
pub const SECRET_BYTES: usize = 32;

/// The HMAC key tokens are signed with.
///
/// Its `Debug` output hides the bytes, so it can sit in logged structs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret of these bytes, or `None` if there are fewer than [`SECRET_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= SECRET_BYTES).then_some(Self(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Reads the secret at `path`, creating it with [`SECRET_BYTES`] random bytes (mode
    /// 0600) if there is no file there yet.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        match Self::create(path) {
            Ok(secret) => {
                tracing::info!(path = %path.display(), "created a new token secret");
                Ok(secret)
            }
            Err(SecretError::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists =>
            {
                Self::load(path)
            }
            Err(error) => Err(error),
        }
    }

    /// Reads the secret at `path`: hex text (surrounding whitespace ignored) of at least
    /// [`SECRET_BYTES`] bytes, in a file no one but its owner may read.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io {
            path: path.to_owned(),
            source,
        };
        let metadata = fs::metadata(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SecretError::Missing {
                path: path.to_owned(),
            },
            _ => io(source),
        })?;
        check_private(path, &metadata)?;
        let text = fs::read_to_string(path).map_err(io)?;
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::NotHex {
            path: path.to_owned(),
        })?;
        if bytes.len() < SECRET_BYTES {
            return Err(SecretError::TooShort {
                path: path.to_owned(),
                bytes: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// Creates the file with a new random secret; fails if it exists.
    fn create(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io {
            path: path.to_owned(),
            source,
        };
        let mut bytes = vec![0; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| io(io::Error::other(e.to_string())))?;
        // Created with its final mode, so the secret is never readable by others, even
        // for a moment; `create_new` makes two relays starting at once agree on one file.
        let mut file = file_mode::private_new().open(path).map_err(io)?;
        let written = writeln!(file, "{}", hex::encode(&bytes)).and_then(|()| file.sync_all());
        if let Err(source) = written {
            let _ = fs::remove_file(path);
            return Err(io(source));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// Why the secret cannot be used. Messages say what to do.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SecretError {
    /// There is no secret file.
    #[error(
        "there is no token secret at {}: start `holdfast-relay serve` once to create it, \
         or pass --secret-file",
        path.display()
    )]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The file could not be read or created.
    #[error("could not read or create the token secret {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file may be read by other users, so the secret may have leaked.
    #[error(
        "the token secret {} can be read by other users (mode {mode:o}); run `chmod 600 {}` \
         and, if it may have leaked, replace it (every token must then be minted again)",
        path.display(),
        path.display()
    )]
    Exposed {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds too few bytes to be a safe key.
    #[error(
        "the token secret {} holds {bytes} bytes; at least {SECRET_BYTES} are needed \
         (delete it to have a new one created)",
        path.display()
    )]
    TooShort {
        /// The path.
        path: PathBuf,
        /// How many bytes it holds.
        bytes: usize,
    },
    /// The file is not hex text.
    #[error("the token secret {} is not hex text", path.display())]
    NotHex {
        /// The path.
        path: PathBuf,
    },
}

fn check_private(path: &Path, metadata: &fs::Metadata) -> Result<(), SecretError> {
    match file_mode::exposed_mode(metadata) {
        Some(mode) => Err(SecretError::Exposed {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(()),
    }
}
