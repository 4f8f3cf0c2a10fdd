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
