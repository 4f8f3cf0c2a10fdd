//! The `stored_record_decode` target: any bytes read as each format the device store and
//! the relay keep in their files, through the code that reads those files.

use crate::alloc::peak_during;

/// Fixed allowance (error values, small buffers, an empty document).
const DECODE_BYTES_BASE: usize = 256 * 1024;
/// Allowance per input byte for a document, whose columns may be DEFLATE-compressed:
/// Automerge inflates them, so a few bytes may stand for many.
const DOCUMENT_BYTES_PER_INPUT_BYTE_MAX: usize = 2048;

/// What serde reserves for a sequence before reading it: up to 1 MiB on the length the
/// bytes claim ("cautious" size hints; bincode's claim limit does not see it), however
/// short the input. Rows nest at most two sequences (a list of changes, each bytes).
const SERDE_RESERVE_BYTES_MAX: usize = 2 << 20;

/// Most bytes decoding a row of `len` bytes may hold at once: what bincode may claim for
/// it (its claim limit comes in steps of four above 64 bytes per byte of row, see
/// `holdfast_protocol::row`) and what serde reserves.
fn row_bytes_max(len: usize) -> usize {
    4 * (holdfast_protocol::row::ROW_CLAIM_BYTES_PER_BYTE * len + 4096)
        + SERDE_RESERVE_BYTES_MAX
        + DECODE_BYTES_BASE
}

/// Who reads a kind, and whether it is a bincode row (prefix-free, trailing bytes refused)
/// or a document.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reader {
    Device,
    Relay,
}

const KINDS: &[(Reader, &str, bool)] = &[
    (Reader::Device, "record", true),
    (Reader::Device, "outbox", true),
    (Reader::Device, "journal", true),
    (Reader::Device, "cursor", true),
    (Reader::Device, "schema", true),
    (Reader::Device, "document", false),
    (Reader::Relay, "log", true),
    (Reader::Relay, "event", true),
    (Reader::Relay, "record", true),
    (Reader::Relay, "snapshot", false),
];

/// Decodes as the store or relay does; a damaged value must be reported as corrupt, with
/// no other kind of error and no panic.
fn decode(reader: Reader, kind: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    match reader {
        Reader::Device => holdfast::stored_rows::decode(kind, bytes).map_err(|e| match e {
            holdfast::Error::Corrupt(m) => m,
            other => panic!("device {kind}: damage reported as {other:?}, not as corrupt"),
        }),
        Reader::Relay => holdfast_relay::stored_rows::decode(kind, bytes).map_err(|e| match e {
            holdfast_relay::StoreError::Corrupt(m) => m,
            other => panic!("relay {kind}: damage reported as {other:?}, not as corrupt"),
        }),
    }
}

/// The first byte picks a format (every one the device store and the relay persist, checked
/// to be listed here), the rest is read as it. Properties, none taken from the decoder's own
/// output alone: no panic, and a damaged value is reported as corrupt; memory held while
/// decoding bounded by what the input pays for; a decoded value written again reads back
/// as itself; and for the bincode rows, which are self-delimiting with trailing bytes
/// refused, no strict prefix of a decodable row and no row with a byte appended decodes.
pub fn stored_record_decode(data: &[u8]) {
    assert_eq!(
        KINDS.len(),
        holdfast::stored_rows::KINDS.len() + holdfast_relay::stored_rows::KINDS.len(),
        "a stored format is missing from this target"
    );
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let (reader, kind, row) = KINDS[pick as usize % KINDS.len()];
    let (decoded, peak) = peak_during(|| decode(reader, kind, bytes));
    let bound = if row {
        row_bytes_max(bytes.len())
    } else {
        DOCUMENT_BYTES_PER_INPUT_BYTE_MAX * bytes.len() + DECODE_BYTES_BASE
    };
    assert!(
        peak <= bound,
        "{reader:?} {kind}: decoding {} bytes held {peak} bytes at once (bound {bound})",
        bytes.len()
    );
    let Ok(written) = decoded else {
        return;
    };
    assert_eq!(
        decode(reader, kind, &written).as_ref(),
        Ok(&written),
        "{reader:?} {kind}: a decoded value written again does not read back as itself"
    );
    if row {
        for cut in [0, 1, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            if cut < bytes.len() {
                assert!(
                    decode(reader, kind, &bytes[..cut]).is_err(),
                    "{reader:?} {kind}: a {cut}-byte prefix of a {}-byte row decodes",
                    bytes.len()
                );
            }
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(
            decode(reader, kind, &longer).is_err(),
            "{reader:?} {kind}: a row with a byte appended decodes"
        );
    }
}

/// Inputs for this target made of one valid stored value of every kind, named for the
/// corpus: `cargo run -p holdfast-testkit --example seed_stored` writes them to
/// `fuzz/corpus/stored_record_decode/`, and the stable test checks they are there.
pub fn seed_inputs() -> Vec<(String, Vec<u8>)> {
    let samples = holdfast::stored_rows::samples()
        .into_iter()
        .map(|(k, b)| (Reader::Device, k, b))
        .chain(
            holdfast_relay::stored_rows::samples()
                .into_iter()
                .map(|(k, b)| (Reader::Relay, k, b)),
        );
    samples
        .enumerate()
        .map(|(i, (reader, kind, bytes))| {
            let pick = KINDS
                .iter()
                .position(|(r, k, _)| *r == reader && *k == kind)
                .expect("every sample's kind is listed");
            let mut input = vec![pick as u8];
            input.extend_from_slice(&bytes);
            let name = format!(
                "seed-{i:02}-{}-{kind}",
                format!("{reader:?}").to_lowercase()
            );
            (name, input)
        })
        .collect()
}

/// Checks that a valid value of every stored kind reads back exactly as written (a
/// document as a snapshot of the same document), beyond what [`stored_record_decode`]
/// checks of it.
pub fn valid_values_read_back() {
    for (name, input) in seed_inputs() {
        let (reader, kind, row) = KINDS[input[0] as usize];
        let written = decode(reader, kind, &input[1..])
            .unwrap_or_else(|e| panic!("{name}: a valid stored value does not decode: {e}"));
        if row {
            assert_eq!(written, input[1..], "{name}: does not read back as written");
        }
        stored_record_decode(&input);
    }
}
