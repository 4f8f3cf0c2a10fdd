use super::*;

#[test]
fn space_id_validation() {
    check("team-notes", Ok(()));
    check("Job_Site.42", Ok(()));
    check(&"a".repeat(SPACE_ID_BYTES_MAX), Ok(()));
    check(
        &"a".repeat(SPACE_ID_BYTES_MAX + 1),
        Err(InvalidSpaceId::TooLong { len: 129, max: 128 }),
    );
    check("", Err(InvalidSpaceId::Empty));
    check(
        "team notes",
        Err(InvalidSpaceId::InvalidChar { ch: ' ', index: 4 }),
    );
    check(
        "a/b",
        Err(InvalidSpaceId::InvalidChar { ch: '/', index: 1 }),
    );
    check(
        "a\0",
        Err(InvalidSpaceId::InvalidChar { ch: '\0', index: 1 }),
    );
    check(
        "équipe",
        Err(InvalidSpaceId::InvalidChar { ch: 'é', index: 0 }),
    );
    check(
        "ab\u{1f600}",
        Err(InvalidSpaceId::InvalidChar {
            ch: '\u{1f600}',
            index: 2,
        }),
    );
}

#[track_caller]
fn check(name: &str, expected: Result<(), InvalidSpaceId>) {
    let id = SpaceId::new(name);
    assert_eq!(id.clone().map(|_| ()), expected);
    assert_eq!(name.parse::<SpaceId>(), id);
    assert_eq!(SpaceId::try_from(name.to_owned()), id);
    assert_eq!(
        deserialized(&bincode_str(name)),
        id.map_err(|e| e.to_string())
    );
    if let Ok(id) = SpaceId::new(name) {
        assert_eq!(id.as_str(), name);
        assert_eq!(id.to_string(), name);
        assert_eq!(String::from(id), name);
    }
}

fn bincode_str(s: &str) -> Vec<u8> {
    bincode::serde::encode_to_vec(s, bincode::config::standard()).unwrap()
}

fn deserialized(bytes: &[u8]) -> Result<SpaceId, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(id, _)| id)
        .map_err(|e| match e {
            bincode::error::DecodeError::OtherString(message) => message,
            other => panic!("unexpected {other:?}"),
        })
}

#[test]
fn space_id_serializes_as_its_name() {
    let id = SpaceId::new("team").unwrap();
    assert_eq!(
        bincode::serde::encode_to_vec(&id, bincode::config::standard()).unwrap(),
        bincode_str("team")
    );
}

#[test]
fn space_id_borrows_as_str() {
    let set = std::collections::HashSet::from([SpaceId::new("team").unwrap()]);
    assert!(set.contains("team"));
}

#[test]
fn uuid_ids() {
    let bytes: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
    let id = RecordId::from_bytes(bytes);
    assert_eq!(id.as_bytes(), &bytes);
    assert_eq!(id.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(
        "00112233-4455-6677-8899-aabbccddeeff"
            .parse::<RecordId>()
            .unwrap(),
        id
    );
    assert_eq!(
        "00112233445566778899aabbccddeeff"
            .parse::<RecordId>()
            .unwrap(),
        id
    );
    assert!("not-a-uuid".parse::<EventId>().is_err());
    assert_eq!(Uuid::from(id), id.as_uuid());
    assert_eq!(RecordId::from(id.as_uuid()), id);
    assert_eq!(
        format!("{:?}", DeviceId::from_bytes(bytes)),
        "DeviceId(00112233-4455-6677-8899-aabbccddeeff)"
    );
}

#[test]
fn new_ids_have_their_version() {
    assert_eq!(DeviceId::random().as_uuid().get_version_num(), 4);
    assert_eq!(RecordId::new_v7().as_uuid().get_version_num(), 7);
    assert_eq!(EventId::new_v7().as_uuid().get_version_num(), 7);
    assert_ne!(DeviceId::random(), DeviceId::random());
}

#[test]
fn v7_ids_sort_by_creation() {
    let ids: Vec<EventId> = (0..1000).map(|_| EventId::new_v7()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    let ids: Vec<RecordId> = (0..1000).map(|_| RecordId::new_v7()).collect();
    assert!(ids
        .windows(2)
        .all(|pair| pair[0].as_bytes() < pair[1].as_bytes()));
}
