//! Deadlines ordered by time: when a parked request times out, when an idle
//! connection is closed, when a TLS handshake must have completed. Pure, no I/O.
//!
//! The loop asks only for what is due, so a tick costs the deadlines that
//! passed, not the number of connections. Entries are never removed
//! early: an entry names a connection by slab key *and* its id (keys are
//! reused, ids are not), and whoever pops it re-checks the connection's
//! current deadline, dropping the entry when it is stale or pushing it again
//! when the deadline moved later (lazy deletion, O(log n) a change).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A parked GET_WINNERS is answered NOT_READY.
    Park,
    /// A connection that made no progress is closed.
    Idle,
    /// A TLS connection still in its handshake is closed: an unauthenticated
    /// peer holds a slot for this long at most.
    Handshake,
}

/// One due deadline: the connection (slab key and id) and what it was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    pub at: Instant,
    pub timer: Timer,
    pub key: usize,
    pub id: u64,
}

#[derive(Debug, Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<Due>>,
}

impl Deadlines {
    pub fn push(&mut self, at: Instant, timer: Timer, key: usize, id: u64) {
        self.heap.push(Reverse(Due { at, timer, key, id }));
    }

    /// The earliest deadline, due or not.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.at)
    }

    /// Takes the earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Due> {
        match self.heap.peek() {
            Some(Reverse(d)) if d.at <= now => self.heap.pop().map(|Reverse(d)| d),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_come_out_in_time_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.push(t0 + Duration::from_millis(30), Timer::Idle, 3, 30);
        d.push(t0 + Duration::from_millis(10), Timer::Park, 1, 10);
        d.push(t0 + Duration::from_millis(20), Timer::Idle, 2, 20);
        assert_eq!(d.next(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(d.pop_due(t0), None);
        let due = d.pop_due(t0 + Duration::from_millis(25));
        assert_eq!(due.map(|d| (d.key, d.timer)), Some((1, Timer::Park)));
        let due = d.pop_due(t0 + Duration::from_millis(25));
        assert_eq!(due.map(|d| (d.key, d.id)), Some((2, 20)));
        assert_eq!(d.pop_due(t0 + Duration::from_millis(25)), None);
        assert_eq!(d.len(), 1);
    }
}
