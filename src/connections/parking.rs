//! Parked GET_WINNERS requests (as Redis' `blocked.c`): the parked list,
//! one [`Parking::park`] and one [`Parking::unpark`], used for every way a
//! request leaves it alone: its timeout, the NOT_READY deferred behind a
//! commit that failed, and shutdown. The draw wakes them all at once
//! ([`Parking::wake_drawn`]): one pass, then the list is emptied whole.
//!
//! Invariants: a connection is in the list exactly while its stage is
//! `Parked` (its `slot` is its place here), and counted for its agency,
//! which never has more than its limit parked (the next request is
//! answered NOT_READY at once), so that one agency's crowd of connections
//! cannot fill the central; a parked connection keeps its
//! input buffered and undecoded; each park pushes one park deadline, and a
//! deadline that pops for a connection no longer parked since then is
//! stale and dropped. An unparked connection is handed to
//! [`Schedule::wake`], so the frames behind its request are decoded at the
//! next iteration, which does not wait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use log::{debug, warn};
use slab::Slab;

use crate::central::lottery::Lottery;
use crate::central::requests;
use crate::central::state::Central;
use crate::connections::connection::{Connection, Stage};
use crate::connections::schedule::Schedule;
use crate::support::deadlines::{Due, Timer};
use crate::support::log_budget::LogBudget;
use crate::wire::{self, ErrorCode};

/// Why a parked request is answered now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
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
    /// How many are parked for each agency (agencies with none are absent).
    per_agency: HashMap<u32, usize>,
    max_per_agency: usize,
    timeout: Duration,
    /// Lines about requests refused a place, one per request at most.
    refusals_log: LogBudget,
}

impl Parking {
    pub fn new(timeout: Duration, max_per_agency: usize) -> Parking {
        Parking {
            parked: Slab::new(),
            per_agency: HashMap::new(),
            max_per_agency,
            timeout,
            refusals_log: LogBudget::default(),
        }
    }

    /// How many requests of `agency` are parked.
    pub fn parked_for(&self, agency: u32) -> usize {
        self.per_agency.get(&agency).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    /// Parks the connection's GET_WINNERS for `agency` until the draw, its
    /// timeout, or (`wait = false`) this iteration's commit; if the agency
    /// has its limit parked already, answers NOT_READY at once instead.
    #[allow(clippy::too_many_arguments)]
    pub fn park(
        &mut self,
        key: usize,
        conn: &mut Connection,
        agency: u32,
        wait: bool,
        now: Instant,
        schedule: &mut Schedule,
        central: &Central,
    ) {
        let parked = self.per_agency.entry(agency).or_default();
        if *parked >= self.max_per_agency {
            if self.refusals_log.allow(now) {
                warn!(
                    "action: estacionar_pedido | result: fail | agencia: {agency} | peer: {} | error: {} requests of this agency are parked already; answered NOT_READY",
                    conn.peer(),
                    self.max_per_agency
                );
            }
            requests::not_ready(central, conn.replies());
            return;
        }
        *parked += 1;
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
        self.leave(agency, slot);
        match wake {
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

    /// The draw happened: every parked request is to be answered with its
    /// agency's winners. One pass over the parked list, which is then
    /// emptied at once (no request is left parked, for any agency); returns
    /// how many were woken.
    pub fn wake_drawn(
        &mut self,
        connections: &mut Slab<Connection>,
        schedule: &mut Schedule,
    ) -> usize {
        for (_, &key) in &self.parked {
            let conn = &mut connections[key];
            if let Stage::Parked { agency, .. } = conn.stage() {
                conn.set_stage(Stage::Answering { agency, next: 0 });
                schedule.wake(key, conn);
            }
        }
        let woken = self.parked.len();
        self.parked.clear();
        self.per_agency.clear();
        woken
    }

    /// A park deadline popped: answers the request NOT_READY if it has been
    /// parked for the whole timeout (else the deadline is stale).
    pub fn expire(
        &mut self,
        due: Due,
        conn: &mut Connection,
        lottery: &Lottery,
        now: Instant,
        schedule: &mut Schedule,
    ) {
        if let Stage::Parked { since, .. } = conn.stage()
            && now.duration_since(since) >= self.timeout
        {
            let wake = Wake::TimedOut {
                done: lottery.closed(),
                expected: lottery.expected(),
            };
            self.unpark(due.key, conn, wake, now, schedule);
        }
    }

    /// A parked connection is closing: it leaves the list.
    pub fn forget(&mut self, conn: &Connection) {
        if let Stage::Parked { agency, slot, .. } = conn.stage() {
            self.leave(agency, slot);
        }
    }

    /// The peer of a parked connection hung up: a wait=1 request is dropped
    /// and the connection closes once the replies it is owed are sent; a
    /// wait=0 one stays, to be answered after this iteration's commit.
    pub fn hang_up(&mut self, conn: &mut Connection) {
        if let Stage::Parked {
            agency,
            slot,
            wait: true,
            ..
        } = conn.stage()
        {
            debug!(
                "action: olvidar_pedido | result: success | agencia: {agency} | peer: {}",
                conn.peer()
            );
            self.leave(agency, slot);
            conn.set_stage(Stage::Closing);
        }
    }

    /// A summary of the refusals not logged, once their window has ended.
    pub fn log_suppressed(&mut self, now: Instant) {
        if let Some(n) = self.refusals_log.take_suppressed(now) {
            warn!(
                "action: estacionar_pedido | result: fail | lineas_suprimidas: {n} | error: more requests than the parked limit of their agency"
            );
        }
    }

    fn leave(&mut self, agency: u32, slot: usize) {
        self.parked.remove(slot);
        if let Some(n) = self.per_agency.get_mut(&agency) {
            *n -= 1;
            if *n == 0 {
                self.per_agency.remove(&agency);
            }
        }
    }
}

/// After the iteration that answered the requests the draw unparked (when
/// it unparked them, and how many): how long answering them took.
pub fn log_woken(waking: Option<(Instant, usize)>) {
    if let Some((drawn_at, parked)) = waking {
        log::info!(
            "action: despertar_pedidos | result: success | pedidos: {parked} | ms: {:.2}",
            drawn_at.elapsed().as_secs_f64() * 1000.0
        );
    }
}
