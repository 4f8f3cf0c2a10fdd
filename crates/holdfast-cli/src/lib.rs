//! The `holdfast` command-line tool: operate a Holdfast device store from the shell.
//!
//! A store keeps its own schema in its file ([`holdfast::Store::open_existing`]), so this
//! tool reads and writes any store without the app's code: it creates stores from a TOML
//! schema ([`parse_schema`]), lists and shows records, edits them (values read by each
//! field's declared type, [`parse_edits`]), settles conflicts, exchanges bundles, syncs with
//! a relay, and checks and compacts the file. Every read command prints text for people or,
//! with `--json`, the stable shapes of [`json`].
//!
//! The binary (`src/main.rs`) only parses the command line and reports errors; everything
//! else lives here so that tests can call it.
#![warn(missing_docs)]

pub mod cli;
mod command;
mod error;
mod input;
pub mod json;
mod schema_file;

pub use cli::Cli;
pub use command::run;
pub use error::{Error, Result};
pub use input::{parse_edits, parse_value, Edit};
pub use schema_file::{parse_schema, SchemaFileError};

/// Writing to standard output failed (a closed pipe, a full disk).
fn output_error(e: std::io::Error) -> Error {
    Error::write("standard output", e)
}

#[cfg(test)]
mod tests;
