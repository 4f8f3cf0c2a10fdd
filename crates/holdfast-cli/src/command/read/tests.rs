//! The outbox as `outbox` and `status` list it, for states only the process syncing sees
//! (an entry the relay's rate limit holds back is not kept across a restart).

use holdfast::{Field, ScalarType, Schema, SpaceId, Store, StoreConfig};

use super::{outbox, status};

/// A store with one note whose outbox entry the relay's rate limit holds until `at`.
fn held(dir: &tempfile::TempDir, at: i64) -> Store {
    let schema = Schema::new(1).collection("note", [("title", Field::lww(ScalarType::String))]);
    let store = Store::open(dir.path().join("s.redb"), StoreConfig::new(schema)).unwrap();
    let team = SpaceId::new("team").unwrap();
    store
        .write(|tx| tx.create("note", &team).map(|_| ()))
        .unwrap();
    let seq = store.outbox().list(None, 1).unwrap()[0].seq;
    store.outbox().hold(&[seq], at).unwrap();
    store
}

fn run(f: impl FnOnce(&mut Vec<u8>) -> crate::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn an_entry_held_by_the_rate_limit_says_until_when() {
    let dir = tempfile::tempdir().unwrap();
    // 2030-01-01T00:00:00.000Z
    let at = 1_893_456_000_000;
    let store = held(&dir, at);
    let db = dir.path().join("s.redb");

    let listed: serde_json::Value =
        serde_json::from_str(&run(|out| outbox(&store, None, true, out))).unwrap();
    let entry = &listed["entries"][0];
    assert_eq!(entry["state"], "syncing", "{listed}");
    assert_eq!(entry["retry_at_ms"], at, "{listed}");
    assert_eq!(entry["blocked_by"], serde_json::Value::Null, "{listed}");
    let text = run(|out| outbox(&store, None, false, out));
    assert!(
        text.contains(
            "held back by the sync server's rate limit until 2030-01-01T00:00:00.000Z — sent \
             again automatically"
        ),
        "{text}"
    );

    let summary: serde_json::Value =
        serde_json::from_str(&run(|out| status(&store, &db, true, out))).unwrap();
    let counts = &summary["outbox"];
    assert_eq!(
        (&counts["held"], &counts["retry_at_ms"], &counts["blocked"]),
        (&1.into(), &at.into(), &0.into()),
        "{summary}"
    );
    let text = run(|out| status(&store, &db, false, out));
    assert!(
        text.contains(
            "1 change held back by the sync server's rate limit until \
             2030-01-01T00:00:00.000Z, then sent"
        ),
        "{text}"
    );
}
