use super::*;

#[test]
fn observations_land_in_the_bucket_of_their_upper_bound() {
    let mut h = Histogram::new(&[10, 100]);
    for ms in [0, 10, 11, 100, 101, 5_000] {
        h.observe(ms);
    }
    assert_eq!(h.counts, vec![2, 2, 2]);
    assert_eq!(h.count, 6);
    assert_eq!(h.sum_ms, 5_222);
    assert_eq!(h.quantile(0.3), Some(Duration::from_millis(10)));
    assert_eq!(h.quantile(0.5), Some(Duration::from_millis(100)));
    assert_eq!(h.quantile(1.0), None, "in the unbounded bucket");
    assert_eq!(Histogram::new(&[10]).quantile(0.5), None);
}
