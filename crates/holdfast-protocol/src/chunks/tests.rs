use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc, ROOT};

use super::*;

/// A document with a few changes: its saved bytes and each change's bytes.
fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut doc = AutoCommit::new();
    for i in 0..3 {
        doc.put(ROOT, "title", format!("draft {i}")).unwrap();
        let text = doc
            .put_object(ROOT, format!("body{i}"), automerge::ObjType::Text)
            .unwrap();
        doc.splice_text(&text, 0, 0, "hello, world").unwrap();
        doc.commit();
    }
    assert!(doc.length(ROOT) > 0);
    let changes = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    (doc.save(), changes)
}

#[test]
fn what_automerge_writes_passes() {
    let (saved, changes) = sample();
    assert_eq!(check_chunks(&saved, &[CHUNK_DOCUMENT]), Ok(1));
    assert_eq!(check_chunks(&changes[0], &[CHUNK_CHANGE]), Ok(1));
    let all = changes.concat();
    assert_eq!(check_chunks(&all, &[CHUNK_CHANGE]), Ok(changes.len()));
    assert_eq!(check_chunks(&[], &[CHUNK_DOCUMENT]), Ok(0));
}

#[test]
fn a_type_not_stored_here_is_refused() {
    let (saved, changes) = sample();
    let refused = check_chunks(&saved, &[CHUNK_CHANGE]).unwrap_err();
    assert!(refused.contains("type 0"), "{refused}");
    assert!(check_chunks(&changes[0], &[CHUNK_DOCUMENT]).is_err());
}

/// Every one-bit damage anywhere in a saved document and in a run of changes is refused.
#[test]
fn every_flipped_bit_is_refused() {
    let (saved, changes) = sample();
    for (bytes, allowed) in [
        (saved, &[CHUNK_DOCUMENT][..]),
        (changes.concat(), &[CHUNK_CHANGE][..]),
    ] {
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                assert!(
                    check_chunks(&damaged, allowed).is_err(),
                    "bit {bit} of byte {at} of {} passed",
                    bytes.len()
                );
            }
        }
    }
}

#[test]
fn truncated_or_extended_bytes_are_refused() {
    let (saved, _) = sample();
    for len in 0..saved.len() {
        if len > 0 {
            assert!(
                check_chunks(&saved[..len], &[CHUNK_DOCUMENT]).is_err(),
                "{len}"
            );
        }
    }
    let mut longer = saved.clone();
    longer.push(0);
    assert!(check_chunks(&longer, &[CHUNK_DOCUMENT]).is_err());
}

/// The bytes on which Automerge 0.12 panics after allocating 79 MB (a bundle chunk, which
/// nothing stores) are refused before Automerge sees them.
#[test]
fn the_input_automerge_panics_on_is_refused() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/artifacts/stored_record_decode/automerge-load-panics"
    );
    let input = std::fs::read(path).unwrap();
    // The target's selector and row framing come first (see the testkit's pinned test).
    let refused = check_chunks(&input[2..], &[CHUNK_DOCUMENT, CHUNK_CHANGE]).unwrap_err();
    assert!(refused.contains("type 3"), "{refused}");
}

#[test]
fn lengths_that_overflow_are_refused() {
    assert_eq!(uleb128(&[0x7f]), Some((127, 1)));
    assert_eq!(uleb128(&[0x80, 0x01]), Some((128, 2)));
    assert_eq!(uleb128(&[0xff; 10]), None);
    assert_eq!(uleb128(&[0x80; 3]), None);
    let mut header = MAGIC.to_vec();
    header.extend([0, 0, 0, 0, CHUNK_CHANGE]);
    header.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert!(check_chunks(&header, &[CHUNK_CHANGE]).is_err());
}
