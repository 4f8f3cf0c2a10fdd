use super::Rng;

#[test]
fn the_same_seed_gives_the_same_draws() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    for _ in 0..100 {
        assert_eq!(a.next_u64(), b.next_u64());
    }
    assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
}

#[test]
fn bounded_draws_stay_in_bounds_and_cover_them() {
    let mut rng = Rng::new(1);
    let mut seen = [false; 5];
    for _ in 0..1000 {
        let n = rng.range(3, 7);
        assert!((3..=7).contains(&n));
        seen[(n - 3) as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
    assert_eq!(rng.below(0), 0);
    let heads = (0..10_000).filter(|_| rng.chance(250)).count();
    assert!((2_200..2_800).contains(&heads), "{heads}");
}
