//! `sync` against a real `holdfast-relay` process on 127.0.0.1: two devices' offline
//! edits travel through it, a conflict is listed and resolved from the command line, a
//! live run reports its states, a new device syncs the spaces its token names, and a bad
//! token is refused in plain words.

use holdfast_relay_harness::Relay;
use serde_json::json;

use crate::util::{field, Device};

/// `sync --once --json` with extra arguments; asserts it completed.
fn sync_once(device: &Device, relay: &Relay, token: &str, extra: &[&str]) -> serde_json::Value {
    let url = relay.url();
    let mut args = vec![
        "sync", "--relay", &url, "--token", token, "--once", "--json",
    ];
    args.extend(extra);
    let run = device.run(&args).json();
    assert_eq!(run["complete"], true, "{run}");
    assert_eq!(run["mode"], "once");
    assert_eq!(run["error"], json!(null));
    run
}

#[test]
fn offline_edits_sync_through_a_relay_and_a_conflict_is_settled() {
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let a = Device::new();
    let b = Device::new();

    let id = a.put("note", &["title=Plan", "status=draft", "body=Ship"]);
    let pushed = sync_once(&a, &relay, &token, &[]);
    assert_eq!(pushed["pushed"], 1);
    assert_eq!(pushed["pending"], 0);
    assert_eq!(pushed["failed"], 0);
    let status = a.run(&["status", "--json"]).json();
    assert_eq!(status["outbox"]["pending"], 0);
    assert!(status["last_synced_ms"].as_i64().is_some());
    let outbox = a.run(&["outbox", "--json"]).json();
    assert_eq!(outbox["entries"], json!([]));

    // A new device may name its space; afterwards the store knows it.
    let pulled = sync_once(&b, &relay, &token, &["--space", "team"]);
    // A new device may get record states (a bootstrap) rather than log entries.
    assert!(pulled["changes_applied"].as_u64().unwrap() >= 1, "{pulled}");
    let r = b.show(&id);
    assert_eq!(field(&r, "title"), "Plan");
    assert_eq!(r["sync"]["state"], "synced");

    // Offline, both change the versioned status; the text merges.
    a.run(&["set", &id, "status=review"]).ok();
    a.run(&["text", &id, "body", "--insert", "4", " on Friday"])
        .ok();
    b.run(&["set", &id, "status=published"]).ok();
    b.run(&["text", &id, "body", "--insert", "0", "Please: "])
        .ok();
    sync_once(&a, &relay, &token, &[]);
    sync_once(&b, &relay, &token, &[]);
    sync_once(&a, &relay, &token, &[]);
    for device in [&a, &b] {
        let listed = device.run(&["conflicts", "--json"]).json();
        let conflicts = listed["conflicts"].as_array().unwrap();
        assert_eq!(conflicts.len(), 1, "{listed}");
        assert_eq!(conflicts[0]["record"], id.as_str());
        assert_eq!(conflicts[0]["field"], "status");
        let mut values: Vec<&str> = conflicts[0]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["value"].as_str().unwrap())
            .collect();
        values.sort();
        assert_eq!(values, ["published", "review"]);
        assert_eq!(field(&device.show(&id), "body"), "Please: Ship on Friday");
    }

    a.run(&["resolve", &id, "status", "--keep-mine"]).ok();
    sync_once(&a, &relay, &token, &[]);
    sync_once(&b, &relay, &token, &[]);
    for device in [&a, &b] {
        let listed = device.run(&["conflicts", "--json"]).json();
        assert_eq!(listed["conflicts"], json!([]), "{listed}");
        assert_eq!(field(&device.show(&id), "status"), "review");
    }
    let text = a
        .run(&["sync", "--relay", &relay.url(), "--token", &token, "--once"])
        .ok();
    assert!(text.starts_with("Synced after "), "{text}");
    assert!(text.contains("Nothing is waiting."), "{text}");
}

#[test]
fn a_live_sync_reports_its_states_until_the_deadline() {
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let a = Device::new();
    a.put("note", &["title=Live"]);
    let out = a
        .run(&[
            "sync",
            "--relay",
            &relay.url(),
            "--token",
            &token,
            "--deadline",
            "2",
        ])
        .ok();
    assert!(
        out.contains(&format!("Connecting to {}", relay.url())),
        "{out}"
    );
    assert!(out.contains("Up to date"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("Synced after "), "{out}");
    assert!(last.contains(": 1 change sent, "), "{out}");
    assert_eq!(a.run(&["status", "--json"]).json()["outbox"]["pending"], 0);
}

#[test]
fn a_refused_token_is_reported_in_plain_words() {
    let relay = Relay::start();
    let a = Device::new();
    a.put("note", &["title=Kept"]);
    for live in [false, true] {
        let url = relay.url();
        let mut args = vec!["sync", "--relay", &url, "--token", "not-a-token"];
        args.extend(if live {
            &["--deadline", "20"][..]
        } else {
            &["--once"]
        });
        let message = a.run(&args).fails();
        assert!(message.starts_with("Sync "), "{message}");
        assert!(message.contains("sign-in"), "{message}");
    }
    // The change stays saved, waiting.
    assert_eq!(a.run(&["status", "--json"]).json()["outbox"]["pending"], 1);
    let message = a
        .run(&[
            "sync",
            "--relay",
            "http://nowhere",
            "--token",
            "t",
            "--once",
        ])
        .fails();
    assert!(
        message.starts_with("the sync server address \"http://nowhere\""),
        "{message}"
    );
}

#[test]
fn a_new_device_syncs_the_spaces_its_token_names() {
    let relay = Relay::start();
    let token = relay.token(&["team:write", "handbook:write"]);
    let a = Device::new();
    let team = a.put("note", &["title=Plan"]);
    let out = a
        .run(&["put", "note", "--space", "handbook", "title=Rules"])
        .ok();
    let handbook = out.trim().to_owned();
    sync_once(&a, &relay, &token, &[]);

    // As a new user would: no --space on a new device.
    let b = Device::new();
    let url = relay.url();
    let out = b
        .run(&["sync", "--relay", &url, "--token", &token, "--once"])
        .ok();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("This store holds no space yet: syncing spaces handbook, team named by the token."),
        "{out}"
    );
    assert!(lines.next().unwrap().starts_with("Synced after "), "{out}");
    assert_eq!(field(&b.show(&team), "title"), "Plan");
    assert_eq!(field(&b.show(&handbook), "title"), "Rules");

    // With --json the notice goes to standard error; standard output stays JSON.
    let c = Device::new();
    let one = relay.token(&["team:read"]);
    let run = c.run(&["sync", "--relay", &url, "--token", &one, "--once", "--json"]);
    assert_eq!(run.json()["complete"], true);
    assert_eq!(
        run.stderr().trim_end(),
        "This store holds no space yet: syncing space team named by the token."
    );
    assert_eq!(field(&c.show(&team), "title"), "Plan");

    // A token that names no space leaves nothing to sync: said in plain words.
    let d = Device::new();
    let message = d
        .run(&["sync", "--relay", &url, "--token", "not-a-jwt", "--once"])
        .fails();
    assert_eq!(
        message,
        "this store holds no space yet and the token names none: name the spaces to sync \
         with --space S"
    );
}

/// A change the relay refused for good (the token only lets this device read the space),
/// then an edit of the same note: the edit waits behind it, and `outbox` and `status` say
/// which entry it waits on, in text and JSON.
#[test]
fn a_change_behind_a_refused_one_is_listed_with_the_entry_it_waits_on() {
    let relay = Relay::start();
    let read_only = relay.token(&["team:read"]);
    let a = Device::new();
    let id = a.put("note", &["title=Plan"]);
    let url = relay.url();
    let run = a.run(&[
        "sync", "--relay", &url, "--token", &read_only, "--once", "--json",
    ]);
    assert_eq!(run.json()["rejected"], 1, "{}", run.stdout());
    a.run(&["set", &id, "title=Plan, edited"]).ok();

    let listed = a.run(&["outbox", "--json"]).json();
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{listed}");
    let (refused, edit) = (&entries[0], &entries[1]);
    assert_eq!(
        (
            &refused["state"],
            &refused["permanent"],
            &refused["blocked_by"]
        ),
        (&json!("failed"), &json!(true), &json!(null)),
        "{listed}"
    );
    assert_eq!(edit["state"], "failed", "{listed}");
    assert_eq!(edit["blocked_by"], refused["seq"], "{listed}");
    for e in entries {
        assert_eq!(e["retry_at_ms"], json!(null), "{listed}");
    }
    let parent = refused["seq"].as_u64().unwrap();
    let text = a.run(&["outbox"]).ok();
    assert!(
        text.contains(&format!(
            "blocked by {parent}: retrying either sends both; discarding {parent} discards \
             this one too"
        )),
        "{text}"
    );

    let status = a.run(&["status", "--json"]).json();
    let outbox = &status["outbox"];
    assert_eq!(
        (&outbox["blocked"], &outbox["held"], &outbox["retry_at_ms"]),
        (&json!(1), &json!(0), &json!(null)),
        "{status}"
    );
    let text = a.run(&["status"]).ok();
    assert!(
        text.contains("2 changes failed (2 waiting for you, 1 of them behind a refused change)"),
        "{text}"
    );
}
