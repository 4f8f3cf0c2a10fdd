//! The relay restored from an older backup (and its epoch rotated): devices repair every
//! space, so the relay again holds every change and no device lost anything.

use std::time::{Duration, Instant};

use super::harness::{config, open_store, sync_once, titles, write_notes, Proxy, Relay};
use crate::util::space;

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

/// A relay with an empty log, and a copy of its file (in its directory) to restore.
fn relay_and_empty_backup() -> (Relay, std::path::PathBuf) {
    let dir = Relay::start().stop();
    let backup = dir.path().join("backup.redb");
    std::fs::copy(dir.path().join("holdfast-relay.redb"), &backup).unwrap();
    (Relay::start_in(dir, &[]), backup)
}

/// Stops `relay`, puts `backup` in place of its file, rotates its epoch, starts it again.
fn restore(relay: Relay, backup: &std::path::Path) -> Relay {
    let dir = relay.stop();
    std::fs::copy(backup, dir.path().join("holdfast-relay.redb")).unwrap();
    Relay::rotate_epoch(dir.path());
    Relay::start_in(dir, &[])
}

/// A device holding records of a space without a cursor for it (a bootstrap cut short
/// after some of its changes were acked, or the one that follows a repair) repairs the
/// space after the relay comes back from a backup: a bootstrap would never give the relay
/// back the acked changes it lost, and the outbox no longer holds them (found by
/// `holdfast-sim`, seed 3360).
#[test]
fn a_space_held_without_a_cursor_is_repaired_after_a_restore() {
    let (relay, backup) = relay_and_empty_backup();
    let token = relay.token(&["team:write"]);
    let a = open_store();
    write_notes(&a, "team", "acked", 3, 1);
    sync_once(&a, config(&relay.url(), &token, &["team"]));
    assert_eq!(a.sync_summary().unwrap().pending, 0, "acked");
    // The state a bootstrap cut short leaves.
    a.inbox().forget_cursor(&space("team")).unwrap();

    let relay = restore(relay, &backup);
    let report = sync_once(&a, config(&relay.url(), &token, &["team"]));
    assert!(report.records_repaired >= 3, "{report:?}");
    let fresh = open_store();
    sync_once(&fresh, config(&relay.url(), &token, &["team"]));
    assert_eq!(titles(&fresh, "team").len(), 3, "the relay has them again");
}

/// A repair message answered later than the reply timeout ends the connection, and the
/// next connection repairs the space again. Taking the silence for the end of the
/// record's repair bootstrapped the space without giving the relay the changes it had
/// lost (found by `holdfast-sim` with links that stall for seconds).
#[test]
fn a_slow_repair_answer_does_not_end_the_repair() {
    let (relay, backup) = relay_and_empty_backup();
    let token = relay.token(&["team:write"]);
    let a = open_store();
    write_notes(&a, "team", "acked", 3, 1);
    sync_once(&a, config(&relay.url(), &token, &["team"]));

    let relay = restore(relay, &backup);
    let proxy = Proxy::new(relay.ws);
    proxy.delay_to_device(Duration::from_millis(600));
    let mut slow = config(&proxy.url(), &token, &["team"]);
    slow.repair_reply_timeout = Duration::from_millis(200);
    let report = a
        .sync_once(slow, Instant::now() + Duration::from_secs(4))
        .unwrap();
    assert!(!report.complete, "the repair cannot finish: {report:?}");
    drop(proxy);

    sync_once(&a, config(&relay.url(), &token, &["team"]));
    let fresh = open_store();
    sync_once(&fresh, config(&relay.url(), &token, &["team"]));
    assert_eq!(titles(&fresh, "team").len(), 3, "the relay has them again");
}

/// A conflict that arrives during a repair and the app's resolver settles is kept (and
/// logged, in the same commit) like one settled during a pull. The repair applied it
/// through the plain resolver run, so nobody could tell it had been settled.
#[test]
fn a_resolver_settlement_during_a_repair_is_kept() {
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let latest =
        holdfast::StoreConfig::new(crate::util::schema()).resolver("note", "status", |c| {
            c.iter().max_by_key(|c| c.at_ms).map(|c| c.value.clone())
        });
    let (a, b) = (open_store(), crate::util::open_with(latest));
    let id = a
        .write(|tx| {
            let id = tx.create("note", &space("team"))?;
            tx.set(id, "status", "draft").map(|()| id)
        })
        .unwrap();
    sync_once(&a, config(&relay.url(), &token, &["team"]));
    sync_once(&b, config(&relay.url(), &token, &["team"]));
    a.write(|tx| tx.set(id, "status", "on a")).unwrap();
    b.write(|tx| tx.set(id, "status", "on b")).unwrap();
    sync_once(&a, config(&relay.url(), &token, &["team"]));

    // Without its cursor, B repairs the space before anything else: A's status arrives
    // in the record's repair conversation.
    b.inbox().forget_cursor(&space("team")).unwrap();
    let report = sync_once(&b, config(&relay.url(), &token, &["team"]));
    assert!(report.records_repaired >= 1, "{report:?}");
    assert!(b.conflicts().unwrap().is_empty());
    let settled = b.settled_conflicts(10).unwrap();
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert_eq!(
        (settled[0].record, settled[0].how),
        (id, holdfast::Settlement::Resolver)
    );
}
