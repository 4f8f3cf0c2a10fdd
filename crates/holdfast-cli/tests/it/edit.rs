//! Writing and reading back: `put`, `set`, `text`, `delete`, `show`, `records` and
//! `outbox`, with the JSON checked field by field.

use serde_json::json;

use crate::util::{field, Device};

#[test]
fn put_set_text_delete_and_show_round_trip() {
    let device = Device::new();
    let other = device.put("item", &["name=Pencil"]);
    let id = device.put(
        "note",
        &[
            "title=Plan",
            "body=Ship on Friday",
            "tags=work, urgent",
            "status=draft",
            "views=2",
            "price=9.5",
            "count=-3",
            "done=true",
            "blob=00ff10",
            "due=2024-05-01T12:00:00Z",
            &format!("link={other}"),
            "scores=[3, 1, 2]",
        ],
    );
    let r = device.show(&id);
    assert_eq!(r["id"], id);
    assert_eq!(r["collection"], "note");
    assert_eq!(r["space"], "team");
    assert_eq!(r["deleted"], false);
    assert_eq!(
        r["sync"],
        json!({"state": "queued", "reason": null, "permanent": false})
    );
    assert_eq!(r["state_candidates"], json!([]));
    assert!(r["created_ms"].as_i64().unwrap() > 0);
    assert_eq!(
        r["fields"]["title"],
        json!({"kind": "lww", "type": "string", "value": "Plan", "conflict": false, "candidates": []})
    );
    assert_eq!(field(&r, "body"), "Ship on Friday");
    assert_eq!(field(&r, "tags"), &json!(["work", "urgent"]));
    assert_eq!(field(&r, "status"), "draft");
    assert_eq!(field(&r, "views"), 2);
    assert_eq!(field(&r, "price"), 9.5);
    assert_eq!(field(&r, "count"), -3);
    assert_eq!(field(&r, "done"), true);
    assert_eq!(field(&r, "blob"), "00ff10");
    assert_eq!(field(&r, "due"), 1_714_564_800_000i64);
    assert_eq!(field(&r, "link"), other.as_str());
    assert_eq!(field(&r, "scores"), &json!([3, 1, 2]));

    let out = device
        .run(&[
            "set",
            &id,
            "status=review",
            "body=Ship on Friday at noon",
            "tags=urgent",
            "views=+5",
            "done=false",
            "scores=[3, 2]",
        ])
        .ok();
    assert!(out.starts_with("Saved 6 fields"), "{out}");
    device
        .run(&["text", &id, "body", "--insert", "0", "Note: "])
        .ok();
    device
        .run(&["text", &id, "body", "--delete", "14", "7"])
        .ok();
    device.run(&["set", &id, "views=3"]).ok();
    let r = device.show(&id);
    assert_eq!(field(&r, "status"), "review");
    assert_eq!(field(&r, "body"), "Note: Ship on at noon");
    assert_eq!(field(&r, "tags"), &json!(["urgent"]));
    assert_eq!(field(&r, "views"), 3);
    assert_eq!(field(&r, "done"), false);
    assert_eq!(field(&r, "scores"), &json!([3, 2]));
    assert_eq!(field(&r, "title"), "Plan", "untouched");

    let human = device.run(&["show", &id]).ok();
    assert!(human.contains("\"Note: Ship on at noon\""), "{human}");
    assert!(human.contains("2024-05-01T12:00:00.000Z"), "{human}");

    let out = device.run(&["delete", &id]).ok();
    assert_eq!(out, format!("Deleted record {id}.\n"));
    let r = device.show(&id);
    assert_eq!(r["deleted"], true);
    // A deleted record still shows what a restore would bring back.
    assert_eq!(r["collection"], "note");
    assert_eq!(field(&r, "title"), "Plan");
    let human = device.run(&["show", &id]).ok();
    assert!(human.contains("deleted (what it held is below"), "{human}");
    assert!(human.contains("\"Plan\""), "{human}");
    let listed = device.run(&["records", "note", "--json"]).json();
    assert_eq!(listed["records"], json!([]));
    let message = device.run(&["set", &id, "title=again"]).fails();
    assert_eq!(message, format!("record {id} is deleted"));
}

#[test]
fn records_are_listed_page_by_page() {
    let device = Device::new();
    let ids: Vec<String> = (0..3)
        .map(|i| device.put("note", &[&format!("title=note {i}")]))
        .collect();
    let item = device.put("item", &["name=Pencil"]);

    let all = device.run(&["records", "--json"]).json();
    let listed: Vec<&str> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    // Collections in name order, records in creation order.
    assert_eq!(listed, [&item, &ids[0], &ids[1], &ids[2]]);
    assert_eq!(all["next"], json!(null));
    assert_eq!(all["records"][1]["fields"]["title"]["value"], "note 0");

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let mut args = vec!["records", "note", "--limit", "2", "--json"];
        if let Some(token) = &after {
            args.extend(["--after", token]);
        }
        let page = device.run(&args).json();
        for r in page["records"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let other_space = device
        .run(&["records", "--space", "elsewhere", "--json"])
        .json();
    assert_eq!(other_space["records"], json!([]));
    let text = device.run(&["records", "note"]).ok();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("note 1"), "{text}");
}

#[test]
fn the_outbox_lists_every_local_change() {
    let device = Device::new();
    let id = device.put("note", &["title=One"]);
    device.run(&["set", &id, "title=Two"]).ok();
    let outbox = device.run(&["outbox", "--json"]).json();
    let entries = outbox["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["record"], id.as_str());
        assert_eq!(e["space"], "team");
        assert_eq!(e["state"], "queued");
        assert_eq!(e["reason"], json!(null));
        assert_eq!(e["permanent"], false);
        assert_eq!(e["attempts"], 0);
        assert_eq!(e["changes"], 1);
        assert!(e["bytes"].as_u64().unwrap() > 0);
        assert_eq!(e["event_id"].as_str().unwrap().len(), 36);
        if i > 0 {
            assert!(e["seq"].as_u64() > entries[i - 1]["seq"].as_u64());
        }
    }
    let status = device.run(&["status", "--json"]).json();
    assert_eq!(status["outbox"]["pending"], 2);
    assert_eq!(status["records"], 1);
    assert_eq!(status["spaces"], json!(["team"]));
    let limited = device.run(&["outbox", "--limit", "1", "--json"]).json();
    assert_eq!(limited["entries"].as_array().unwrap().len(), 1);
}
