use super::*;

const MIN: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(60);

fn lost() -> Lost {
    Lost::transient("No connection to the sync server")
}

fn delay(next: Next) -> Duration {
    match next {
        Next::Reconnect(delay) => delay,
        Next::Stop => panic!("stopped"),
    }
}

/// The largest delay the policy can draw: all bits set.
const TOP: u64 = u64::MAX;

#[test]
fn failures_in_a_row_back_off_up_to_the_cap() {
    let mut policy = Reconnect::new(MIN, MAX);
    for attempt in 0..10 {
        // The largest delay the jitter can draw is the ceiling itself.
        let ceiling = (MIN * 2u32.pow(attempt)).min(MAX);
        let drawn = delay(policy.on_lost(&lost(), || ceiling.as_micros() as u64, |_| true));
        assert_eq!(drawn, ceiling, "attempt {attempt}");
    }
}

#[test]
fn a_healthy_session_starts_the_backoff_again() {
    let mut policy = Reconnect::new(MIN, MAX);
    for _ in 0..8 {
        policy.on_lost(&lost(), || TOP, |_| true);
    }
    let healthy = Lost {
        healthy: true,
        ..lost()
    };
    assert!(delay(policy.on_lost(&healthy, || TOP, |_| true)) <= MIN);
}

#[test]
fn the_relays_retry_after_is_a_floor() {
    let mut policy = Reconnect::new(MIN, MAX);
    let busy = Lost {
        retry_after: Some(Duration::from_secs(30)),
        ..lost()
    };
    assert_eq!(
        delay(policy.on_lost(&busy, || 0, |_| true)),
        Duration::from_secs(30)
    );
}

#[test]
fn a_refused_space_is_dropped_and_the_others_reconnect_at_once() {
    let mut policy = Reconnect::new(MIN, MAX);
    let team = SpaceId::new("team").unwrap();
    let refused = Lost {
        refused_space: Some(team.clone()),
        permanent: true,
        ..lost()
    };
    let mut dropped = None;
    let next = policy.on_lost(
        &refused,
        || TOP,
        |space| {
            dropped = Some(space.clone());
            true
        },
    );
    assert_eq!(next, Next::Reconnect(Duration::ZERO));
    assert_eq!(dropped, Some(team));
    // With no space left, the refusal stops the worker.
    assert_eq!(policy.on_lost(&refused, || TOP, |_| false), Next::Stop);
}

#[test]
fn a_permanent_refusal_stops_until_the_user_acts() {
    let mut policy = Reconnect::new(MIN, MAX);
    for _ in 0..8 {
        policy.on_lost(&lost(), || TOP, |_| true);
    }
    let bad_token = Lost {
        permanent: true,
        ..lost()
    };
    assert_eq!(policy.on_lost(&bad_token, || TOP, |_| true), Next::Stop);
    // The user fixed it: the next failure waits little.
    policy.user_acted();
    assert!(delay(policy.on_lost(&lost(), || TOP, |_| true)) <= MIN);
}
