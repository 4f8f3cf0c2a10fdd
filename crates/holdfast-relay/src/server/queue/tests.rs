//! Bounds of the send queue.

use super::*;

fn frame(len: usize) -> Bytes {
    Bytes::from(vec![0; len])
}

#[test]
fn the_queue_holds_its_bounds() {
    let queue = SendQueue::new(2, 100);
    assert_eq!(queue.push(frame(60), 60), Ok(()));
    assert_eq!(queue.push(frame(41), 41), Err(Refused::Full), "bytes");
    assert_eq!(queue.push(frame(40), 40), Ok(()));
    assert_eq!(queue.push(frame(1), 1), Err(Refused::Full), "frames");
}

#[test]
fn an_empty_queue_takes_one_frame_of_any_size() {
    let queue = SendQueue::new(2, 100);
    assert_eq!(queue.push(frame(1000), 1000), Ok(()));
    assert_eq!(queue.push(frame(1), 1), Err(Refused::Full));
}

#[test]
fn nothing_is_queued_after_a_close() {
    let queue = SendQueue::new(2, 100);
    queue.close(1000, "bye");
    assert_eq!(queue.push(frame(1), 1), Err(Refused::Closed));
}

#[test]
fn the_queue_congests_at_half_of_either_bound() {
    let queue = SendQueue::new(4, 100);
    assert_eq!(queue.push(frame(10), 10), Ok(()));
    assert!(!queue.is_congested(), "one frame of four");
    assert_eq!(queue.push(frame(10), 10), Ok(()));
    assert!(queue.is_congested(), "two frames of four");

    let queue = SendQueue::new(100, 100);
    assert_eq!(queue.push(frame(49), 49), Ok(()));
    assert!(!queue.is_congested(), "49 bytes of 100");
    assert_eq!(queue.push(frame(1), 1), Ok(()));
    assert!(queue.is_congested(), "50 bytes of 100");
}

#[tokio::test]
async fn taking_frames_off_a_congested_queue_wakes_the_reader() {
    let queue = SendQueue::new(4, 1000);
    queue.push(frame(1), 1).unwrap();
    queue.push(frame(1), 1).unwrap();
    assert!(queue.is_congested());
    let waiter = queue.clone();
    let woken = tokio::spawn(async move { waiter.drained().await });
    queue.pop().await;
    assert!(!queue.is_congested());
    tokio::time::timeout(std::time::Duration::from_secs(5), woken)
        .await
        .expect("woken")
        .unwrap();
}
