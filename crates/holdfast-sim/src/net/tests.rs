use super::*;

fn calm() -> LinkFaults {
    LinkFaults {
        kill_per_mille: 0,
        raw_fault_per_mille: 0,
        slow_per_mille: 0,
        slow_ms_max: 1,
        latency_ms: (5, 5),
    }
}

#[test]
fn frames_arrive_in_order_after_their_latency_then_the_close() {
    let mut rng = Rng::new(1);
    let mut wire = Wire::new(1, 0);
    assert_eq!(
        wire.send(Dir::Up, vec![1], 0, &calm(), &mut rng),
        Sent::Queued
    );
    assert_eq!(
        wire.send(Dir::Up, vec![2], 1, &calm(), &mut rng),
        Sent::Queued
    );
    wire.close_from(Dir::Up, 2);
    assert_eq!(wire.up.pop_due(4), None);
    assert_eq!(wire.up.pop_due(5), Some(Packet::Frame(vec![1])));
    assert_eq!(wire.up.pop_due(6), Some(Packet::Frame(vec![2])));
    assert_eq!(wire.up.pop_due(6), Some(Packet::Close));
    assert_eq!(
        wire.send(Dir::Up, vec![3], 7, &calm(), &mut rng),
        Sent::Discarded
    );
}

#[test]
fn a_killed_connection_loses_what_is_in_flight() {
    let mut rng = Rng::new(2);
    let mut wire = Wire::new(1, 0);
    wire.send(Dir::Down, vec![1], 0, &calm(), &mut rng);
    wire.reset(3, &mut rng);
    assert_eq!(wire.down.pop_due(3), Some(Packet::Close));
    assert_eq!(wire.up.pop_due(3), Some(Packet::Close));
    assert_eq!(
        wire.send(Dir::Down, vec![2], 4, &calm(), &mut rng),
        Sent::Discarded
    );
}

#[test]
fn a_reordered_frame_swaps_with_the_one_before_and_times_stay_ordered() {
    let mut rng = Rng::new(3);
    let mut faults = calm();
    let mut wire = Wire::new(1, 0);
    wire.send(Dir::Up, vec![1], 0, &faults, &mut rng);
    faults.raw_fault_per_mille = 1000;
    let mut seen = Vec::new();
    for i in 2..40u8 {
        if let Sent::Raw(kind) = wire.send(Dir::Up, vec![i], u64::from(i), &faults, &mut rng) {
            seen.push(kind);
        }
    }
    assert!(
        seen.contains(&"dropped") && seen.contains(&"duplicated") && seen.contains(&"reordered")
    );
    let mut last = 0;
    while let Some(at) = wire.up.next_at() {
        assert!(at >= last);
        last = at;
        wire.up.pop_due(at);
    }
}
