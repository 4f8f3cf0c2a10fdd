use super::*;

fn admission(handshakes_max: usize, per_ip_max: usize, connections_max: usize) -> Arc<Admission> {
    let limits = ServerLimits {
        handshakes_max,
        handshakes_per_ip_max: per_ip_max,
        connections_max,
        ..ServerLimits::default()
    };
    Arc::new(Admission::new(&limits, Arc::new(Metrics::new())))
}

fn peer(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], port))
}

#[test]
fn handshakes_are_capped_per_address_just_below_and_at_the_cap() {
    let admission = admission(100, 3, 10);
    let held: Vec<Handshake> = (0..3)
        .map(|port| admission.handshake(peer(2, port)).expect("below the cap"))
        .collect();
    assert_eq!(
        admission.handshake(peer(2, 9)).err(),
        Some(Refusal::HandshakesPerIp)
    );
    // Another address is not affected.
    let other = admission.handshake(peer(3, 1)).expect("another address");
    drop(held);
    assert_eq!(
        admission.held_by(peer(2, 0).ip()),
        0,
        "tickets are given back"
    );
    assert!(admission.handshake(peer(2, 9)).is_ok());
    drop(other);
}

#[test]
fn a_per_address_cap_of_zero_is_no_cap() {
    let admission = admission(100, 0, 10);
    let held: Vec<Handshake> = (0..50)
        .map(|port| admission.handshake(peer(2, port)).unwrap())
        .collect();
    assert_eq!(held.len(), 50);
}

#[test]
fn the_handshake_budget_is_shared_and_given_back() {
    let admission = admission(2, 0, 10);
    let a = admission.handshake(peer(2, 1)).unwrap();
    let _b = admission.handshake(peer(3, 1)).unwrap();
    assert_eq!(
        admission.handshake(peer(4, 1)).err(),
        Some(Refusal::Handshakes)
    );
    drop(a);
    assert!(admission.handshake(peer(4, 1)).is_ok());
}

#[test]
fn device_permits_are_their_own_budget() {
    let admission = admission(1, 1, 2);
    let _handshake = admission.handshake(peer(2, 1)).unwrap();
    let a = admission.device().expect("one");
    let _b = admission.device().expect("two");
    assert!(admission.device().is_none(), "past connections_max");
    drop(a);
    assert!(admission.device().is_some());
}

#[test]
fn refusals_are_counted_by_reason() {
    let admission = admission(1, 1, 1);
    let _held = admission.handshake(peer(2, 1)).unwrap();
    let _ = admission.handshake(peer(2, 2));
    let _ = admission.handshake(peer(3, 2));
    let text = admission.metrics.encode();
    for (reason, count) in [
        ("handshake_limit", 2),
        ("handshake_limit_per_ip", 0),
        ("busy", 0),
    ] {
        let line =
            format!("holdfast_relay_connections_refused_total{{reason=\"{reason}\"}} {count}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}

#[test]
fn log_lines_are_budgeted_per_second_and_the_rest_counted() {
    let budget = LineBudget::new(3);
    let taken: Vec<Option<u64>> = (0..5).map(|_| budget.take(100)).collect();
    assert_eq!(taken, [Some(0), Some(0), Some(0), None, None]);
    // The next second's first line says how many were left out.
    assert_eq!(budget.take(101), Some(2));
    assert_eq!(budget.take(101), Some(0));
}
