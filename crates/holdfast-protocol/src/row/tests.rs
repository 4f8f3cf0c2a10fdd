use super::*;

#[test]
fn rows_round_trip_and_refuse_damage() {
    let row = (7u32, "seven".to_owned(), vec![1u8, 2, 3]);
    let bytes = encode_row(3, &row);
    assert_eq!(decode_row::<(u32, String, Vec<u8>)>(3, &bytes), Ok(row));
    assert_eq!(
        decode_row::<(u32, String, Vec<u8>)>(4, &bytes),
        Err(RowError::UnknownVersion(3))
    );
    assert_eq!(decode_row::<u32>(3, &[]), Err(RowError::Empty));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        decode_row::<(u32, String, Vec<u8>)>(3, &longer),
        Err(RowError::TrailingBytes)
    );
    let cut = &bytes[..bytes.len() - 1];
    assert!(matches!(
        decode_row::<(u32, String, Vec<u8>)>(3, cut),
        Err(RowError::Body(_))
    ));
}

#[test]
fn a_length_prefix_claiming_more_than_the_limit_is_refused_without_allocating() {
    // Version 1, then a varint length prefix of 2^40 for a Vec<u8>.
    let bytes = [1u8, 0xFD, 0, 0, 0, 0, 0, 1, 0, 0];
    assert!(matches!(
        decode_row::<Vec<u8>>(1, &bytes),
        Err(RowError::Body(_))
    ));
}

#[test]
fn a_short_row_claiming_a_long_string_is_refused_without_allocating_it() {
    // Version 1, then a u32 length prefix of 33,618,692 for a String: ten bytes that
    // allocated 32 MiB before the claim limit followed the row's length.
    let bytes = [1u8, 252, 4, 251, 0, 2, 0, 0, 0, 0];
    assert!(matches!(
        decode_row::<String>(1, &bytes),
        Err(RowError::Body(_))
    ));
    // A row whose lists grow most in memory still decodes: 4,000 empty byte strings.
    let row: Vec<Vec<u8>> = vec![Vec::new(); 4000];
    let bytes = encode_row(1, &row);
    assert_eq!(decode_row::<Vec<Vec<u8>>>(1, &bytes), Ok(row));
}

#[test]
fn a_damaged_body_is_described_in_plain_words() {
    // A string whose one byte is not UTF-8.
    let row = encode_row(1, &"x".to_owned());
    let mut damaged = row.clone();
    *damaged.last_mut().unwrap() = 0xff;
    let Err(RowError::Body(message)) = decode_row::<String>(1, &damaged) else {
        panic!("damage decoded");
    };
    assert_eq!(message, "a text in the row is not UTF-8");
    for dump in ["{", "Some(", "Utf8Error"] {
        assert!(!message.contains(dump), "{message}");
    }
    let Err(RowError::Body(message)) = decode_row::<String>(1, &row[..row.len() - 1]) else {
        panic!("a short row decoded");
    };
    assert_eq!(message, "the row ends early");
}
