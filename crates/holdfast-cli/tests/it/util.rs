//! Running the binary: a device is a store file in a temporary directory, every command
//! gets its `--db`, and each run's outcome is checked in one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The notes schema of the issue, plus one field of every other kind and type.
pub const SCHEMA: &str = r#"version = 1
[collections.note.fields]
title  = { kind = "lww", type = "string" }
body   = { kind = "text" }
tags   = { kind = "list" }
status = { kind = "versioned", type = "string", indexed = true }
views  = { kind = "counter" }
price  = { kind = "versioned", type = "f64" }
count  = { kind = "lww", type = "i64", indexed = true }
done   = { kind = "lww", type = "bool" }
blob   = { kind = "lww", type = "bytes" }
due    = { kind = "lww", type = "timestamp" }
link   = { kind = "lww", type = "ref" }
scores = { kind = "list", type = "i64" }

[collections.item.fields]
name = { kind = "lww", type = "string" }
"#;

/// The binary under test.
pub fn holdfast(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(args)
        .current_dir(dir)
        .env_remove("HOLDFAST_DB")
        .env_remove("HOLDFAST_TOKEN")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the binary runs");
    Run {
        args: args.join(" "),
        output,
    }
}

/// One run of the binary.
pub struct Run {
    args: String,
    output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8(self.output.stdout.clone()).unwrap()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8(self.output.stderr.clone()).unwrap()
    }

    pub fn succeeded(&self) -> bool {
        self.output.status.success()
    }

    /// Asserts success; returns standard output.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert!(
            self.output.status.success(),
            "`holdfast {}` failed:\n{}",
            self.args,
            self.stderr()
        );
        self.stdout()
    }

    /// Asserts success and parses standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }

    /// Asserts a failure reported in plain words: exit code 1, one `holdfast: ` line on
    /// standard error, no panic, backtrace or debug dump. Returns the message.
    #[track_caller]
    pub fn fails(&self) -> String {
        let err = self.stderr();
        assert_eq!(
            self.output.status.code(),
            Some(1),
            "`holdfast {}` should fail with exit code 1:\nstdout: {}\nstderr: {err}",
            self.args,
            self.stdout()
        );
        let message = err
            .strip_prefix("holdfast: ")
            .unwrap_or_else(|| panic!("not a plain message: {err:?}"))
            .trim_end()
            .to_owned();
        assert!(!message.contains('\n'), "one line: {err:?}");
        for dump in ["panicked", "backtrace", "Error {", "Some(", "\\\""] {
            assert!(!message.contains(dump), "{dump} in {err:?}");
        }
        message
    }
}

/// A store in its own temporary directory, created with `init`.
pub struct Device {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

impl Device {
    pub fn new() -> Device {
        Device::with_schema(SCHEMA)
    }

    pub fn with_schema(schema: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.toml"), schema).unwrap();
        let db = dir.path().join("store.redb");
        let device = Device { dir, db };
        let out = device.run(&["init", "--schema", "schema.toml"]).ok();
        assert!(out.starts_with("Created "), "{out}");
        device
    }

    /// Runs `holdfast ARGS --db STORE` in the device's directory.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        let db = self.db.to_str().unwrap();
        all.extend(["--db", db]);
        holdfast(self.dir.path(), &all)
    }

    /// `put` in space `team`; returns the new id.
    pub fn put(&self, collection: &str, values: &[&str]) -> String {
        let mut args = vec!["put", collection, "--space", "team"];
        args.extend(values);
        let out = self.run(&args).ok();
        let id = out.trim().to_owned();
        assert_eq!(out, format!("{id}\n"), "only the id");
        id
    }

    /// `show --json`.
    pub fn show(&self, id: &str) -> serde_json::Value {
        self.run(&["show", id, "--json"]).json()
    }

    /// A path in the device's directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Exports everything to a bundle in this device's directory; returns its path.
    pub fn export(&self, name: &str) -> String {
        let file = self.path(name);
        self.run(&["export", &file]).ok();
        file
    }

    /// Imports `file`; returns the import's JSON summary.
    pub fn import(&self, file: &str) -> serde_json::Value {
        self.run(&["import", file, "--json"]).json()
    }
}

/// The `value` of field `name` of a record's JSON.
pub fn field<'a>(record: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &record["fields"][name]["value"]
}
