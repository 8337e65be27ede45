//! Which batch to send next: live readings first, the backlog in the slots left over.
//!
//! At each connect the uplink takes the newest seq in the buffer, `newest`, and the
//! fleet's watermark `w` (the last one it heard; the retained ack moves it up at once).
//! - The **backlog** cursor walks `w+1 ..= newest`: what the fleet may not have.
//! - The **live** cursor starts at `newest` and follows new readings as they are flushed.
//!
//! Policy: live goes first whenever it is due (at most one batch per `batch_interval`,
//! or at once again after a full batch); the backlog takes the other in-flight slots but
//! never the last one (when `max_inflight > 1`), so a live batch never waits behind the
//! backlog for more than the one round trip it needs. An ack moves both cursors up to
//! the watermark: what the fleet has is never sent again in this session.
//!
//! Pure bookkeeping: no I/O, tested on its own.

/// Which stream a read serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// New readings, flushed after the connect.
    Live,
    /// Readings the fleet may not have from before the connect.
    Backlog,
}

/// One read from the buffer: readings with seq > `after`, and for the backlog at most
/// `through`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub stream: Stream,
    pub after: u64,
    pub through: Option<u64>,
}

/// The two cursors of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursors {
    live: u64,
    live_due: bool,
    backlog: u64,
    backlog_end: u64,
}

impl Cursors {
    /// Cursors for a session that starts with the fleet at `watermark` and the buffer's
    /// newest seq at `newest`.
    pub fn new(watermark: u64, newest: u64) -> Cursors {
        Cursors { live: newest.max(watermark), live_due: false, backlog: watermark, backlog_end: newest }
    }

    /// A `batch_interval` passed: live may send again.
    pub fn tick(&mut self) {
        self.live_due = true;
    }

    /// Whether everything from before the connect has been sent (or acknowledged).
    pub fn backlog_done(&self) -> bool {
        self.backlog >= self.backlog_end
    }

    /// The fleet has everything through `watermark`.
    pub fn acknowledged(&mut self, watermark: u64) {
        self.live = self.live.max(watermark);
        self.backlog = self.backlog.max(watermark);
    }

    /// The fleet did not acknowledge what it took in time: send everything above
    /// `watermark` again, up to what live has sent, in the backlog's slots.
    pub fn rewind(&mut self, watermark: u64) {
        self.backlog_end = self.backlog_end.max(self.live);
        self.backlog = watermark.min(self.backlog_end);
    }

    /// What to read next, with `in_flight` batches not yet PUBACKed; `None`: wait.
    pub fn next(&self, in_flight: usize, max_inflight: usize) -> Option<Read> {
        let max_inflight = max_inflight.max(1);
        if in_flight >= max_inflight {
            return None;
        }
        if self.live_due {
            return Some(Read { stream: Stream::Live, after: self.live, through: None });
        }
        let backlog_slots = if max_inflight > 1 { max_inflight - 1 } else { 1 };
        if !self.backlog_done() && in_flight < backlog_slots {
            return Some(Read { stream: Stream::Backlog, after: self.backlog, through: Some(self.backlog_end) });
        }
        None
    }

    /// Records what `read` gave: `covered` is the highest seq the batch holds (a reading
    /// or a dropped range), `full` whether more may follow right after it (the read hit
    /// its limit and nothing was clipped off).
    pub fn advance(&mut self, read: Read, covered: Option<u64>, full: bool) {
        match read.stream {
            Stream::Live => {
                if let Some(c) = covered {
                    self.live = self.live.max(c);
                }
                self.live_due = full;
            }
            Stream::Backlog => {
                self.backlog = match covered {
                    Some(c) if full => c.min(self.backlog_end).max(self.backlog),
                    _ => self.backlog_end,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_goes_first_and_the_backlog_leaves_it_a_slot() {
        let mut c = Cursors::new(10, 1_000);
        // Nothing live is due yet: the backlog takes slots, but not the last one.
        let r = c.next(0, 4).expect("backlog");
        assert_eq!(r, Read { stream: Stream::Backlog, after: 10, through: Some(1_000) });
        assert!(c.next(2, 4).is_some());
        assert_eq!(c.next(3, 4), None, "the last slot is kept for live");
        c.tick();
        assert_eq!(c.next(3, 4).map(|r| r.stream), Some(Stream::Live));
        assert_eq!(c.next(4, 4), None);
    }

    #[test]
    fn the_backlog_walks_to_where_live_started_and_stops() {
        let mut c = Cursors::new(0, 25);
        let r = c.next(0, 4).expect("read");
        c.advance(r, Some(10), true);
        assert_eq!(c.next(0, 4).map(|r| r.after), Some(10));
        c.advance(c.next(0, 4).expect("read"), Some(25), false);
        assert!(c.backlog_done());
        assert_eq!(c.next(0, 4), None);
    }

    #[test]
    fn live_stays_due_after_a_full_batch_and_rests_after_a_partial_one() {
        let mut c = Cursors::new(5, 5);
        assert!(c.backlog_done());
        c.tick();
        let r = c.next(0, 1).expect("live");
        assert_eq!(r.after, 5);
        c.advance(r, Some(605), true);
        assert_eq!(c.next(0, 1).map(|r| (r.stream, r.after)), Some((Stream::Live, 605)));
        c.advance(c.next(0, 1).expect("live"), Some(610), false);
        assert_eq!(c.next(0, 1), None);
        c.tick();
        c.advance(c.next(0, 1).expect("live"), None, false);
        assert_eq!(c.next(0, 1), None, "an empty read leaves the cursor and waits for the next tick");
        c.tick();
        assert_eq!(c.next(0, 1).map(|r| r.after), Some(610));
    }

    #[test]
    fn an_ack_moves_both_cursors_up_never_down() {
        let mut c = Cursors::new(0, 100);
        c.acknowledged(60);
        assert_eq!(c.next(0, 4).map(|r| r.after), Some(60));
        c.acknowledged(150);
        assert!(c.backlog_done());
        c.tick();
        assert_eq!(c.next(0, 4).map(|r| r.after), Some(150));
        c.acknowledged(3);
        assert_eq!(c.next(0, 4).map(|r| r.after), Some(150));
    }

    #[test]
    fn a_rewind_sends_everything_above_the_watermark_again_backlog_and_live() {
        let mut c = Cursors::new(100, 300);
        c.advance(c.next(0, 4).expect("backlog"), Some(300), false);
        c.tick();
        c.advance(c.next(0, 4).expect("live"), Some(360), false);
        assert!(c.backlog_done());
        c.acknowledged(150);
        c.rewind(150);
        assert_eq!(c.next(0, 4), Some(Read { stream: Stream::Backlog, after: 150, through: Some(360) }));
        c.tick();
        assert_eq!(c.next(0, 4).map(|r| (r.stream, r.after)), Some((Stream::Live, 360)), "live goes on where it was");
    }

    #[test]
    fn with_one_slot_the_backlog_still_moves() {
        let c = Cursors::new(0, 10);
        assert_eq!(c.next(0, 1).map(|r| r.stream), Some(Stream::Backlog));
    }
}
