//! Two devices that meet without a network: bundles carry their work both ways, a
//! versioned field edited on both becomes a conflict on both, and settling it on one
//! settles it everywhere once the bundles go round again.

use serde_json::json;

use crate::util::{field, Device};

/// A's bundle to B and B's to A.
fn exchange(a: &Device, b: &Device) {
    let from_a = a.export("a.bundle");
    let from_b = b.export("b.bundle");
    b.import(&from_a);
    a.import(&from_b);
}

/// The `conflicts --json` list of a device.
fn conflicts(device: &Device) -> Vec<serde_json::Value> {
    let out = device.run(&["conflicts", "--json"]).json();
    out["conflicts"].as_array().unwrap().clone()
}

#[test]
fn a_conflict_made_offline_is_listed_on_both_and_settled_from_one() {
    let a = Device::new();
    let b = Device::new();
    let id = a.put("note", &["title=Plan", "status=draft", "body=Ship"]);
    let bundle = a.export("first.bundle");
    let imported = b.import(&bundle);
    assert_eq!(imported["records_changed"], 1);
    assert_eq!(imported["rejected"], json!([]));
    assert_eq!(field(&b.show(&id), "status"), "draft");

    a.run(&["set", &id, "status=review"]).ok();
    b.run(&["set", &id, "status=published"]).ok();
    // Collaborative fields merge meanwhile.
    a.run(&["text", &id, "body", "--insert", "4", " on Friday"])
        .ok();
    b.run(&["text", &id, "body", "--insert", "0", "Please: "])
        .ok();
    exchange(&a, &b);

    let a_device = a.run(&["status", "--json"]).json()["device"].clone();
    for (device, mine, theirs) in [(&a, "review", "published"), (&b, "published", "review")] {
        let listed = conflicts(device);
        assert_eq!(listed.len(), 1, "{listed:?}");
        let c = &listed[0];
        assert_eq!(c["record"], id.as_str());
        assert_eq!(c["collection"], "note");
        assert_eq!(c["field"], "status");
        assert!(c["detected_ms"].as_i64().unwrap() > 0);
        let candidates = c["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 2);
        let pick = |is_mine: bool| {
            candidates
                .iter()
                .find(|x| x["mine"] == is_mine)
                .unwrap_or_else(|| panic!("no mine={is_mine} in {candidates:?}"))
        };
        assert_eq!(pick(true)["value"], mine);
        assert_eq!(pick(false)["value"], theirs);
        let from_a = if mine == "review" {
            pick(true)
        } else {
            pick(false)
        };
        assert_eq!(from_a["device"], a_device);

        let r = device.show(&id);
        assert_eq!(r["fields"]["status"]["conflict"], true);
        assert_eq!(r["fields"]["status"]["value"], json!(null));
        assert_eq!(r["fields"]["status"]["candidates"], c["candidates"]);
        assert_eq!(field(&r, "body"), "Please: Ship on Friday");
        let status = device.run(&["status", "--json"]).json();
        assert_eq!(status["conflicts"]["open"], 1);
        let text = device.run(&["conflicts"]).ok();
        assert!(
            text.contains(&format!("holdfast resolve {id} status --keep-mine")),
            "{text}"
        );
    }

    let out = b.run(&["resolve", &id, "status", "--keep-mine"]).ok();
    assert!(out.contains("kept this device's version"), "{out}");
    assert!(conflicts(&b).is_empty());
    exchange(&a, &b);
    for device in [&a, &b] {
        assert!(conflicts(device).is_empty());
        let r = device.show(&id);
        assert_eq!(field(&r, "status"), "published");
        assert_eq!(r["fields"]["status"]["conflict"], false);
        let counts = &device.run(&["status", "--json"]).json()["conflicts"];
        assert_eq!(counts["open"], 0);
        assert_eq!(counts["detected"], 1);
        assert_eq!(counts["resolved"], 1);
    }
}

#[test]
fn resolving_with_a_value_or_theirs() {
    let a = Device::new();
    let b = Device::new();
    let id = a.put("note", &["price=1.0", "status=draft"]);
    b.import(&a.export("x.bundle"));
    a.run(&["set", &id, "price=2.5", "status=review"]).ok();
    b.run(&["set", &id, "price=3.5", "status=published"]).ok();
    exchange(&a, &b);
    let message = a.run(&["resolve", &id, "price", "--value", "lots"]).fails();
    assert_eq!(
        message,
        "field \"price\" holds numbers (f64); \"lots\" is not one"
    );
    a.run(&["resolve", &id, "price", "--value", "3.0"]).ok();
    a.run(&["resolve", &id, "status", "--use-theirs"]).ok();
    exchange(&a, &b);
    for device in [&a, &b] {
        let r = device.show(&id);
        assert_eq!(field(&r, "price"), 3.0);
        assert_eq!(field(&r, "status"), "published");
        assert!(conflicts(device).is_empty());
    }
}

#[test]
fn importing_a_bundle_twice_changes_nothing() {
    let a = Device::new();
    let b = Device::new();
    let ids: Vec<String> = (0..3)
        .map(|i| a.put("note", &[&format!("title=n{i}")]))
        .collect();
    let bundle = a.export("all.bundle");
    let first = b.import(&bundle);
    assert_eq!(first["records_changed"], 3);
    assert!(first["changes_applied"].as_u64().unwrap() >= 3);
    let before = b.run(&["status", "--json"]).json();
    let shown: Vec<_> = ids.iter().map(|id| b.show(id)).collect();

    let second = b.import(&bundle);
    assert_eq!(
        second,
        json!({"records_changed": 0, "changes_applied": 0, "auto_resolved": 0, "rejected": [],
            "mark": 3})
    );
    let text = b.run(&["import", &bundle]).ok();
    assert!(text.starts_with("Nothing new"), "{text}");
    let after = b.run(&["status", "--json"]).json();
    assert_eq!(after["outbox"], before["outbox"]);
    assert_eq!(after["records"], before["records"]);
    for (id, shown) in ids.iter().zip(&shown) {
        assert_eq!(&b.show(id), shown);
    }
}

#[test]
fn an_export_can_be_limited_to_one_space() {
    let a = Device::new();
    a.put("note", &["title=team"]);
    a.run(&["put", "note", "--space", "private", "title=mine"])
        .ok();
    let file = a.path("team.bundle");
    let summary = a
        .run(&["export", &file, "--space", "team", "--json"])
        .json();
    assert_eq!(summary["records"], 1);
    assert_eq!(summary["file"], file.as_str());
    assert_eq!(summary["bytes"], std::fs::metadata(&file).unwrap().len());
    let b = Device::new();
    b.import(&file);
    let listed = b.run(&["records", "--json"]).json();
    assert_eq!(listed["records"].as_array().unwrap().len(), 1);
    assert_eq!(listed["records"][0]["space"], "team");
}

#[test]
fn a_large_bundle_is_imported_in_steps() {
    // A bundle of a few step's worth of records, written by the library with the schema
    // the tool reads from TOML.
    let dir = tempfile::tempdir().unwrap();
    let schema = holdfast_cli::parse_schema(crate::util::SCHEMA, "schema.toml").unwrap();
    let source = holdfast::Store::open(
        dir.path().join("source.redb"),
        holdfast::StoreConfig::new(schema),
    )
    .unwrap();
    let team = holdfast::SpaceId::new("team").unwrap();
    let records = 700;
    source
        .write(|tx| {
            for i in 0..records {
                let id = tx.create("note", &team)?;
                tx.set(id, "title", format!("note {i}"))?;
            }
            Ok(())
        })
        .unwrap();
    let bundle = dir.path().join("large.bundle");
    std::fs::write(&bundle, source.export_changes(None, None).unwrap().bytes).unwrap();

    let device = Device::new();
    let bundle = bundle.to_str().unwrap();
    let summary = device.import(bundle);
    assert_eq!(summary["records_changed"], records);
    assert_eq!(summary["changes_applied"], records);
    let listed = device.run(&["records", "note", "--json"]).json();
    assert_eq!(listed["records"].as_array().unwrap().len(), records);
    assert_eq!(
        listed["records"][699]["fields"]["title"]["value"],
        "note 699"
    );
    assert_eq!(device.import(bundle)["changes_applied"], 0);
}

#[test]
fn a_delete_meeting_an_edit_is_settled_with_state() {
    let a = Device::new();
    let b = Device::new();
    let id = a.put("note", &["title=Plan"]);
    b.import(&a.export("x.bundle"));
    a.run(&["delete", &id]).ok();
    b.run(&["set", &id, "title=Edited"]).ok();
    exchange(&a, &b);
    for device in [&a, &b] {
        let listed = conflicts(device);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["field"], "_state");
        assert_eq!(listed[0]["collection"], "note");
        let r = device.show(&id);
        assert_eq!(r["deleted"], true);
        // The edit the user would restore is there to see, on both devices.
        assert_eq!(field(&r, "title"), "Edited");
        assert_eq!(r["state_candidates"].as_array().unwrap().len(), 2);
        let text = device.run(&["show", &id]).ok();
        assert!(text.contains("--value live"), "{text}");
    }
    let message = a
        .run(&["resolve", &id, "_state", "--value", "gone"])
        .fails();
    assert!(message.contains("--value live"), "{message}");
    a.run(&["resolve", &id, "_state", "--value", "live"]).ok();
    exchange(&a, &b);
    for device in [&a, &b] {
        assert!(conflicts(device).is_empty());
        let r = device.show(&id);
        assert_eq!(r["deleted"], false);
        assert_eq!(field(&r, "title"), "Edited");
    }
}
