//! Repair: a device and the relay converge through `sync_record`, the relay keeping no
//! sync state between messages.

use automerge::sync::{self, SyncDoc};

use super::*;

/// Runs the device's side of a repair of `doc` until its `generate_sync_message` is done;
/// returns every answer the relay gave.
fn converge(store: &RedbLogStore, s: &SpaceId, doc: &mut Doc, may_write: bool) -> Vec<RecordSync> {
    let mut state = sync::State::new();
    let mut answers = Vec::new();
    loop {
        let Some(message) = doc.doc.sync().generate_sync_message(&mut state) else {
            return answers;
        };
        assert!(answers.len() < 20, "repair does not converge");
        let answer = store
            .sync_record(s, doc.record, &message.encode(), may_write)
            .unwrap();
        if let Some(reply) = &answer.reply {
            let reply = sync::Message::decode(reply).unwrap();
            doc.doc
                .sync()
                .receive_sync_message(&mut state, reply)
                .unwrap();
        }
        answers.push(answer);
    }
}

fn logged(store: &RedbLogStore, s: &SpaceId) -> Vec<Vec<u8>> {
    pull_from(store, s, None)
        .0
        .into_iter()
        .flat_map(|e| e.changes)
        .collect()
}

#[test]
fn a_device_and_the_relay_each_missing_changes_converge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let s = space("s");
    // The relay holds a history the device saw only the start of ...
    let mut writer = Doc::new();
    let start = writer.change();
    push(&store, vec![entry(&s, writer.record, vec![start.clone()])]);
    let mut device = Doc::with_record(writer.record);
    device.doc.load_incremental(&start).unwrap();
    for _ in 0..3 {
        push(
            &store,
            vec![entry(&s, writer.record, vec![writer.change()])],
        );
    }
    store.compact_now().unwrap();
    push(
        &store,
        vec![entry(&s, writer.record, vec![writer.change()])],
    );
    // ... and the device made changes the relay lost.
    let lost: Vec<Vec<u8>> = (0..3).map(|_| device.change()).collect();
    let seq_before = store.last_seq(&s).unwrap();

    let answers = converge(&store, &s, &mut device, true);

    let relay = log_doc(&store, &s, device.record);
    let mut heads = device.doc.get_heads();
    heads.sort();
    assert_eq!(sorted_heads(&relay), heads);
    let log = logged(&store, &s);
    assert!(
        lost.iter().all(|c| log.contains(c)),
        "the relay's log has the device's changes"
    );
    let stored: Vec<&ChangeEntry> = answers.iter().flat_map(|a| &a.stored).collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].seq, seq_before + 1);
    assert_eq!(stored[0].changes.len(), 3);
    assert!(answers.iter().all(|a| a.rejected.is_none()));
    // Once in sync, a repair stores nothing more.
    let again = converge(&store, &s, &mut device, true);
    assert!(again.iter().all(|a| a.stored.is_empty()));
    assert_eq!(store.last_seq(&s).unwrap(), seq_before + 1);
}

#[test]
fn a_relay_that_lost_a_whole_record_gets_it_back_in_entries_a_frame_can_carry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let s = space("s");
    let mut device = Doc::new();
    let changes: Vec<Vec<u8>> = (0..CHANGES_PER_ENTRY_MAX + 5)
        .map(|_| device.change())
        .collect();
    let answers = converge(&store, &s, &mut device, true);
    let stored: Vec<&ChangeEntry> = answers.iter().flat_map(|a| &a.stored).collect();
    let sizes: Vec<usize> = stored.iter().map(|e| e.changes.len()).collect();
    assert_eq!(sizes, [CHANGES_PER_ENTRY_MAX, 5]);
    assert_eq!(
        stored
            .iter()
            .flat_map(|e| e.changes.clone())
            .collect::<Vec<_>>(),
        changes
    );
    assert_eq!(
        pull_from(&store, &s, None).0,
        stored.into_iter().cloned().collect::<Vec<_>>()
    );
}

#[test]
fn a_reader_receives_changes_but_its_own_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let s = space("s");
    let mut writer = Doc::new();
    for _ in 0..3 {
        push(
            &store,
            vec![entry(&s, writer.record, vec![writer.change()])],
        );
    }
    let mut reader = Doc::with_record(writer.record);
    let own = reader.change();
    let answers = converge(&store, &s, &mut reader, false);
    assert!(answers
        .iter()
        .all(|a| a.stored.is_empty() && a.rejected.is_none()));
    assert_eq!(store.last_seq(&s).unwrap(), 3);
    assert!(!logged(&store, &s).contains(&own));
    // The reader holds everything the relay has.
    let relay = log_doc(&store, &s, writer.record);
    for hash in relay.get_heads() {
        assert!(reader.doc.get_change_by_hash(&hash).is_some());
    }
}

#[test]
fn changes_past_the_size_limit_are_refused_and_not_claimed() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        StoreConfig {
            record_bytes_max: 2000,
            ..quiet()
        },
    );
    let s = space("s");
    let mut device = Doc::new();
    device.change();
    device.big_change(5000, seed);
    let answers = converge(&store, &s, &mut device, true);
    assert!(answers.iter().all(|a| a.stored.is_empty()));
    let rejected: Vec<&Outcome> = answers.iter().filter_map(|a| a.rejected.as_ref()).collect();
    assert!(
        matches!(
            rejected[..],
            [Outcome::Rejected {
                code: RejectCode::RecordTooLarge { max: 2000 },
                permanent: true,
                ..
            }]
        ),
        "{rejected:?}"
    );
    assert!(
        answers.last().unwrap().reply.is_none(),
        "the relay ends the conversation"
    );
    assert_eq!(store.last_seq(&s).unwrap(), 0);
}

#[test]
fn a_bad_sync_message_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let s = space("s");
    let record = RecordId::new_v7();
    let mut valid = {
        let mut doc = Doc::with_record(record);
        doc.change();
        let message = doc
            .doc
            .sync()
            .generate_sync_message(&mut sync::State::new());
        message.unwrap().encode()
    };
    valid.truncate(valid.len() / 2);
    for bad in [&b""[..], b"junk", &[0x42, 0xff, 0xff, 0xff], &valid] {
        let err = store.sync_record(&s, record, bad, true).unwrap_err();
        assert!(matches!(err, StoreError::BadSyncMessage(_)), "{err:?}");
    }
    assert_eq!(store.last_seq(&s).unwrap(), 0);
}
