use super::*;

fn check(min_ms: u64, max_ms: u64, attempts: u32, random: u64, expected_ms: u64) {
    let mut b = Backoff::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms));
    for _ in 0..attempts {
        b.next_delay(0);
    }
    assert_eq!(
        b.next_delay(random),
        Duration::from_millis(expected_ms),
        "min {min_ms} max {max_ms} after {attempts} attempts, random {random}"
    );
}

#[test]
fn the_ceiling_doubles_up_to_the_cap_and_the_delay_is_drawn_below_it() {
    // random % (ceiling_us + 1): u64::MAX picks values spread below the ceiling.
    check(100, 10_000, 0, 100_000, 100); // exactly the ceiling
    check(100, 10_000, 1, 200_000, 200);
    check(100, 10_000, 3, 800_000, 800);
    check(100, 10_000, 20, 10_000_000, 10_000); // capped
    check(100, 10_000, 200, 10_000_000, 10_000); // no overflow
    check(100, 10_000, 3, 400_000, 400); // below the ceiling
    check(100, 10_000, 0, 0, 1); // never zero
}

#[test]
fn reset_starts_over() {
    let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    for _ in 0..5 {
        b.next_delay(random());
    }
    assert_eq!(b.ceiling(), Duration::from_secs(32));
    b.reset();
    assert_eq!(b.ceiling(), Duration::from_secs(1));
    for _ in 0..1000 {
        assert!(b.next_delay(random()) <= Duration::from_secs(60));
    }
}
