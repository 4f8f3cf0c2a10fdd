//! The relay restored from an older backup (and its epoch rotated): devices repair every
//! space, so the relay again holds every change and no device lost anything.

use std::time::Instant;

use super::harness::{config, open_store, sync_once, titles, write_notes, Relay};

#[test]
fn a_relay_restored_from_a_backup_is_repaired_by_the_devices() {
    let started = Instant::now();
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let (a, b) = (open_store(), open_store());
    write_notes(&a, "team", "before", 10, 1);
    sync_once(&a, config(&relay.url(), &token, &["team"]));
    sync_once(&b, config(&relay.url(), &token, &["team"]));

    // Back up the stopped relay's file, then go on without it.
    let dir = relay.stop();
    let backup = dir.path().join("backup.redb");
    std::fs::copy(dir.path().join("holdfast-relay.redb"), &backup).unwrap();
    let relay = Relay::start_in(dir, &[]);
    write_notes(&a, "team", "after-a", 10, 1);
    sync_once(&a, config(&relay.url(), &token, &["team"]));
    write_notes(&b, "team", "after-b", 5, 1);
    sync_once(&b, config(&relay.url(), &token, &["team"]));
    sync_once(&a, config(&relay.url(), &token, &["team"]));
    assert_eq!(titles(&a, "team").len(), 25);
    assert_eq!(titles(&a, "team"), titles(&b, "team"));

    // Restore the backup: the relay lost 15 entries.
    let dir = relay.stop();
    std::fs::copy(&backup, dir.path().join("holdfast-relay.redb")).unwrap();
    Relay::rotate_epoch(dir.path());
    let relay = Relay::start_in(dir, &[]);

    let ra = sync_once(&a, config(&relay.url(), &token, &["team"]));
    let rb = sync_once(&b, config(&relay.url(), &token, &["team"]));
    eprintln!("repair: a {ra:?}\n b {rb:?}");
    assert!(ra.records_repaired >= 20, "{ra:?}");

    let fresh = open_store();
    sync_once(&fresh, config(&relay.url(), &token, &["team"]));
    let all = titles(&a, "team");
    assert_eq!(all.len(), 25);
    assert_eq!(titles(&b, "team"), all, "b lost nothing");
    assert_eq!(
        titles(&fresh, "team"),
        all,
        "the relay holds every change again"
    );
    // And it goes on: a later change reaches the others through the repaired space.
    write_notes(&a, "team", "later", 1, 1);
    sync_once(&a, config(&relay.url(), &token, &["team"]));
    sync_once(&b, config(&relay.url(), &token, &["team"]));
    assert_eq!(titles(&b, "team").len(), 26);
    eprintln!("restore: {:?}", started.elapsed());
}
