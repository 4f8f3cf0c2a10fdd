//! Files written by earlier versions of the store open with what they held (redb's
//! `backward_compatibility.rs`). The fixtures, and how each was made, are in `tests/data`.

use std::path::Path;

use holdfast_protocol::RejectCode;
use holdfast_relay::FORMAT_VERSION;
use redb::{ReadableDatabase, TableDefinition, TableHandle};

use super::*;

/// When `relay-format-2.redb` stored alpha's entries; beta's are 1 s later.
const T0: u64 = 1_700_000_000_000;

#[test]
fn a_format_2_file_keeps_its_event_outcomes_in_their_spaces() {
    let dir = tempfile::tempdir().unwrap();
    unpack("relay-format-2.redb.zst", dir.path());
    assert_eq!(format(dir.path()), 2);
    let store = open(dir.path());
    let (alpha, beta) = (space("alpha"), space("beta"));
    let id = |byte: u8| EventId::from_bytes([byte; 16]);
    let check = |space: &SpaceId, byte: u8, want: Option<Outcome>| {
        let got = store.event_outcome(space, id(byte)).unwrap();
        assert_eq!(got, want, "{space} {byte:x}");
    };
    check(&alpha, 0xa1, Some(stored(1)));
    check(&alpha, 0xa2, Some(stored(2)));
    check(&beta, 0xb1, Some(stored(1)));
    check(&beta, 0xb4, Some(stored(2)));
    // The format-2 relay answered a2 in beta with alpha's seq; that row is alpha's.
    check(&beta, 0xa2, None);
    // A duplicate's and a rejection's space is unknown: they are decided again.
    check(&beta, 0xb2, None);
    check(&beta, 0xb3, None);
    check(&alpha, 0xb1, None);

    // Retries are answered from the moved rows, whatever changes they carry.
    let retry = |space: &SpaceId, byte: u8, changes: Vec<Vec<u8>>| PushEntry {
        event_id: id(byte),
        space: space.clone(),
        record: RecordId::new_v7(),
        changes,
    };
    let fresh = || Doc::new().change();
    let retries = vec![
        retry(&alpha, 0xa1, vec![fresh()]),
        retry(&alpha, 0xa2, vec![fresh()]),
        retry(&beta, 0xb1, vec![fresh()]),
        retry(&beta, 0xb4, vec![fresh()]),
    ];
    let got = store.store_at(retries, T0 + 5_000).unwrap();
    assert_eq!(
        outcomes(&got),
        [duplicate(1), duplicate(2), duplicate(1), duplicate(2)]
    );
    let log = pull_all(&store, &beta);
    let again = vec![
        retry(&beta, 0xb2, log[0].changes.clone()),
        retry(&beta, 0xb3, vec![b"junk".to_vec()]),
        retry(&beta, 0xa2, vec![fresh()]),
    ];
    let got = outcomes(&store.store_at(again, T0 + 5_000).unwrap());
    assert_eq!(got[0], duplicate(1));
    assert!(
        matches!(
            &got[1],
            Outcome::Rejected {
                code: RejectCode::Malformed,
                permanent: true,
                ..
            }
        ),
        "{got:?}"
    );
    assert_eq!(got[2], stored(3), "alpha's id is a new event in beta");
    assert_eq!(store.last_seq(&alpha).unwrap(), 2);

    let window = store.config().event_retention_ms;
    assert_eq!(store.prune(T0 + window).unwrap(), 2);
    assert_eq!(store.prune(T0 + 1_000 + window).unwrap(), 2);
    check(&beta, 0xb1, None);
    check(&beta, 0xa2, Some(stored(3)));
    drop(store);
    assert_eq!(format(dir.path()), FORMAT_VERSION);
    let store = open(dir.path());
    assert_eq!(pull_all(&store, &beta).len(), 3);
}

/// Decompresses the fixture `name` of `tests/data` to `relay.redb` in `dir`.
fn unpack(name: &str, dir: &Path) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let packed = std::fs::read(&path).unwrap();
    let file = zstd::decode_all(packed.as_slice()).unwrap();
    std::fs::write(dir.join("relay.redb"), file).unwrap();
}

/// The format `relay.redb` in `dir` records, read with redb alone; also checks that a
/// file of format 3 or later has no table of the single event-id namespace left.
fn format(dir: &Path) -> u32 {
    let db = redb::Database::open(dir.join("relay.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn
        .open_table(TableDefinition::<&str, &[u8]>::new("meta"))
        .unwrap();
    let bytes = meta.get("format").unwrap().unwrap();
    let format = u32::from_le_bytes(bytes.value().try_into().unwrap());
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    assert_eq!(names.iter().any(|n| n == "events"), format < 3, "{names:?}");
    format
}
