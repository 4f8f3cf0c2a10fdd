//! Arbitrary bytes imported as a change bundle: a typed error or a clean import, never a
//! panic, and the store stays sound.
#![no_main]

use std::sync::OnceLock;

use holdfast::{Field, ScalarType, Schema, Store, StoreConfig};
use libfuzzer_sys::fuzz_target;

fn store() -> &'static Store {
    static STORE: OnceLock<(Store, tempfile::TempDir)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let schema = Schema::new(1).collection(
                "note",
                [
                    ("title", Field::lww(ScalarType::String)),
                    ("body", Field::text()),
                ],
            );
            let store =
                Store::open(dir.path().join("fuzz.redb"), StoreConfig::new(schema)).expect("open");
            (store, dir)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    let _ = store().import_changes(data);
});
