//! Parked GET_WINNERS requests (as Redis' `blocked.c`): the parked list,
//! one [`Parking::park`] and one [`Parking::unpark`], used for every way a
//! request leaves it: its timeout, the NOT_READY deferred behind a commit
//! that failed, the draw, and shutdown.
//!
//! Invariants: a connection is in the list exactly while its stage is
//! `Parked` (its `slot` is its place here); a parked connection keeps its
//! input buffered and undecoded; each park pushes one park deadline, and a
//! deadline that pops for a connection no longer parked since then is
//! stale and dropped. An unparked connection is handed to
//! [`Schedule::wake`], so the frames behind its request are decoded at the
//! next iteration, which does not wait.

use std::time::{Duration, Instant};

use log::debug;
use slab::Slab;

use crate::connection::{Connection, Stage};
use crate::deadlines::{Due, Timer};
use crate::schedule::Schedule;
use crate::wire::{self, ErrorCode};

/// Why a parked request is answered now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The draw happened: stream its winners.
    Drawn,
    /// Parked for the whole park timeout: NOT_READY as of now.
    TimedOut { done: u32, expected: u32 },
    /// A wait=0 request behind a commit that failed: the NOT_READY it
    /// would have had without that commit.
    NotReady { done: u32, expected: u32 },
    /// The central is stopping.
    ShuttingDown,
}

pub struct Parking {
    /// Slab keys of the parked connections.
    parked: Slab<usize>,
    timeout: Duration,
}

impl Parking {
    pub fn new(timeout: Duration) -> Parking {
        Parking {
            parked: Slab::new(),
            timeout,
        }
    }

    pub fn len(&self) -> usize {
        self.parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    /// Parks the connection's GET_WINNERS for `agency` until the draw, its
    /// timeout, or (`wait = false`) this iteration's commit.
    pub fn park(
        &mut self,
        key: usize,
        conn: &mut Connection,
        agency: u32,
        wait: bool,
        now: Instant,
        schedule: &mut Schedule,
    ) {
        debug!(
            "action: estacionar_pedido | result: in_progress | agencia: {agency} | peer: {}",
            conn.peer()
        );
        let slot = self.parked.insert(key);
        conn.set_stage(Stage::Parked {
            agency,
            since: now,
            wait,
            slot,
        });
        schedule.push_deadline(now + self.timeout, Timer::Park, key, conn.id());
    }

    /// Answers a parked request as `wake` says and hands the connection to
    /// the schedule. Does nothing if it is not parked.
    pub fn unpark(
        &mut self,
        key: usize,
        conn: &mut Connection,
        wake: Wake,
        now: Instant,
        schedule: &mut Schedule,
    ) {
        let Stage::Parked { agency, slot, .. } = conn.stage() else {
            return;
        };
        self.parked.remove(slot);
        match wake {
            Wake::Drawn => conn.set_stage(Stage::Answering { agency, next: 0 }),
            Wake::TimedOut { done, expected } => {
                debug!(
                    "action: estacionar_pedido | result: success | agencia: {agency} | respuesta: NOT_READY"
                );
                conn.replies()
                    .push(false, |out| wire::encode_not_ready(out, done, expected));
                conn.set_stage(Stage::Receiving);
                conn.progress(now);
            }
            Wake::NotReady { done, expected } => {
                conn.replies()
                    .push(false, |out| wire::encode_not_ready(out, done, expected));
                conn.set_stage(Stage::Receiving);
            }
            Wake::ShuttingDown => {
                conn.replies().push(false, |out| {
                    wire::encode_error(
                        out,
                        ErrorCode::ShuttingDown,
                        0,
                        "the central is shutting down",
                    )
                });
                conn.set_stage(Stage::Closing);
            }
        }
        schedule.wake(key, conn);
    }

    /// Unparks every parked request (only those with `wait = false` when
    /// `only_no_wait`); returns how many.
    pub fn unpark_all(
        &mut self,
        connections: &mut Slab<Connection>,
        wake: Wake,
        only_no_wait: bool,
        now: Instant,
        schedule: &mut Schedule,
    ) -> usize {
        let keys: Vec<usize> = self.parked.iter().map(|(_, &key)| key).collect();
        let mut woken = 0;
        for key in keys {
            let conn = &mut connections[key];
            if only_no_wait && matches!(conn.stage(), Stage::Parked { wait: true, .. }) {
                continue;
            }
            self.unpark(key, conn, wake, now, schedule);
            woken += 1;
        }
        woken
    }

    /// A park deadline popped: answers the request NOT_READY if it has been
    /// parked for the whole timeout (else the deadline is stale).
    pub fn expire(
        &mut self,
        due: Due,
        conn: &mut Connection,
        wake: Wake,
        now: Instant,
        schedule: &mut Schedule,
    ) {
        if let Stage::Parked { since, .. } = conn.stage()
            && now.duration_since(since) >= self.timeout
        {
            self.unpark(due.key, conn, wake, now, schedule);
        }
    }

    /// A parked connection is closing: it leaves the list.
    pub fn forget(&mut self, conn: &Connection) {
        if let Stage::Parked { slot, .. } = conn.stage() {
            self.parked.remove(slot);
        }
    }
}
