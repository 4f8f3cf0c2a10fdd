//! One change followed through the logs by its event id: the pushing device's `push`
//! span, the relay's `store` span and the receiving device's `apply` span. The devices
//! log through the test process's subscriber (told apart by their device ids); the relay
//! is a process whose log the harness keeps.

use std::time::Instant;

use holdfast::Store;

use super::harness::{config, open_store, Relay, TIMEOUT};
use crate::util::{log, space};

fn sync_once_traced(store: &Store, url: &str, token: &str) {
    log();
    let report = store
        .sync_once(config(url, token, &["team"]), Instant::now() + TIMEOUT)
        .unwrap();
    assert!(report.complete, "{report:?}");
}

/// The lines of `log` in a span `name` with this event id.
fn lines_in<'a>(log: &'a str, name: &str, event_id: &str) -> Vec<&'a str> {
    let span = format!("{name}{{event_id={event_id}");
    log.lines().filter(|l| l.contains(&span)).collect()
}

#[test]
fn one_change_is_followed_from_the_push_through_the_relay_to_the_apply() {
    let relay = Relay::start_in(tempfile::tempdir().unwrap(), &[]);
    let token = relay.token(&["team:write"]);
    // A field value no log may show.
    let secret = "a title that must never be logged 7f3a";
    let a = open_store();
    let sp = space("team");
    a.write(|tx| {
        let id = tx.create("note", &sp)?;
        tx.set(id, "title", secret)
    })
    .unwrap();
    let entry = a.outbox().list(None, 10).unwrap().remove(0);
    let event_id = entry.event_id.to_string();

    sync_once_traced(&a, &relay.url(), &token);
    let b = open_store();
    // B bootstraps first (snapshot pages carry no event ids); a second change then
    // reaches it as a log entry.
    sync_once_traced(&b, &relay.url(), &token);
    let id = entry.record;
    a.update(id, |tx| tx.set(id, "title", "second")).unwrap();
    let entry = a.outbox().list(None, 10).unwrap().remove(0);
    let event_id_2 = entry.event_id.to_string();
    sync_once_traced(&a, &relay.url(), &token);
    sync_once_traced(&b, &relay.url(), &token);

    let text = log().text();
    let on = |device: &Store| format!("device={}", device.device_id());
    let device: String = text
        .lines()
        .filter(|l| l.contains(&on(&a)))
        .collect::<Vec<_>>()
        .join("\n");
    let received: String = text
        .lines()
        .filter(|l| l.contains(&on(&b)))
        .collect::<Vec<_>>()
        .join("\n");
    let relay_log = std::fs::read_to_string(relay.dir.path().join("relay.log")).unwrap();
    for event_id in [&event_id, &event_id_2] {
        let pushed = lines_in(&device, "push", event_id);
        assert!(
            pushed.iter().any(|l| l.contains("pushing"))
                && pushed.iter().any(|l| l.contains("acked")),
            "the pushing device's push span of {event_id}:\n{device}"
        );
        let stored = lines_in(&relay_log, "store", event_id);
        assert!(
            stored.iter().any(|l| l.contains("stored")),
            "the relay's store span of {event_id}:\n{relay_log}"
        );
    }
    let applied = lines_in(&received, "apply", &event_id_2);
    assert!(
        applied.iter().any(|l| l.contains("applied")),
        "the receiving device's apply span of {event_id_2}:\n{received}"
    );
    for log in [&device, &relay_log, &received] {
        assert!(!log.contains(secret), "a field value was logged");
        assert!(!log.contains("second\""), "a field value was logged");
    }
}
