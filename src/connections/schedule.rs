//! Which connections the loop visits: the ready queue (drive without
//! waiting for an event), the touched list (this iteration's held replies,
//! settled by the commit and then written), the committing list (replies
//! held for a commit still under way), the deferred list (a bet or close
//! to stage once that commit is over), and their deadlines.
//!
//! Entries name a connection by slab key and id, so an entry left behind by
//! a closed connection never reaches the one that reuses its key. Only this
//! module writes a connection's [`Marks`](crate::connections::connection::Marks), so they
//! say exactly whether it is listed: a connection is queued once, touched
//! once per iteration, committing and deferred once, however often it is
//! asked for, and has at most one idle deadline in the heap. A TLS connection gets one handshake deadline
//! when it is admitted; it closes the connection only if the handshake is
//! still not complete then.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::info;
use slab::Slab;

use super::connection::Connection;
use crate::support::deadlines::{Deadlines, Due, Timer};
use crate::support::log_budget::LogBudget;

pub struct Schedule {
    ready: VecDeque<(usize, u64)>,
    touched: Vec<(usize, u64)>,
    committing: Vec<(usize, u64)>,
    deferred: Vec<(usize, u64)>,
    deadlines: Deadlines,
    idle_timeout: Duration,
    /// Lines about idle closes: one per connection, so a crowd is budgeted.
    idle_log: LogBudget,
    handshake_timeout: Duration,
    park_timeout: Duration,
}

impl Schedule {
    pub fn new(
        idle_timeout: Duration,
        handshake_timeout: Duration,
        park_timeout: Duration,
    ) -> Schedule {
        Schedule {
            ready: VecDeque::new(),
            touched: Vec::new(),
            committing: Vec::new(),
            deferred: Vec::new(),
            deadlines: Deadlines::default(),
            idle_timeout,
            idle_log: LogBudget::default(),
            handshake_timeout,
            park_timeout,
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How long the deadline of `timer` waits for.
    pub fn timeout(&self, timer: Timer) -> Duration {
        match timer {
            Timer::Handshake => self.handshake_timeout,
            Timer::Idle => self.idle_timeout,
            Timer::Park => self.park_timeout,
        }
    }

    /// A connection just accepted at `now`: its idle deadline, and its
    /// handshake deadline if it starts with a TLS handshake.
    pub fn admit(&mut self, key: usize, conn: &mut Connection, now: Instant) {
        self.arm_idle(key, conn);
        if conn.is_handshaking() {
            let at = now + self.handshake_timeout;
            self.deadlines.push(at, Timer::Handshake, key, conn.id());
        }
    }

    /// Queues a connection to be driven without waiting for an event.
    pub fn enqueue(&mut self, key: usize, conn: &mut Connection) {
        if !conn.marks.queued {
            conn.marks.queued = true;
            self.ready.push_back((key, conn.id()));
        }
    }

    /// Lists a connection among those whose replies the commit settles and
    /// the flush writes, once per iteration.
    pub fn touch(&mut self, key: usize, conn: &mut Connection) {
        if !conn.marks.touched {
            conn.marks.touched = true;
            self.touched.push((key, conn.id()));
        }
    }

    /// An unparked connection: driven next (the frames behind its request
    /// are decoded then), its reply written this iteration, and back under
    /// the idle timeout.
    pub fn wake(&mut self, key: usize, conn: &mut Connection) {
        self.enqueue(key, conn);
        self.touch(key, conn);
        self.arm_idle(key, conn);
    }

    /// Gives a connection its idle deadline unless it has one in the heap
    /// already (that one is due no later: progress only moves it later).
    pub fn arm_idle(&mut self, key: usize, conn: &mut Connection) {
        if conn.marks.idle_timer.is_none() {
            let at = conn.idle_deadline(self.idle_timeout);
            conn.marks.idle_timer = Some(at);
            self.deadlines.push(at, Timer::Idle, key, conn.id());
        }
    }

    pub fn push_deadline(&mut self, at: Instant, timer: Timer, key: usize, id: u64) {
        self.deadlines.push(at, timer, key, id);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// The next due deadline whose connection is still there.
    fn pop_due(&mut self, now: Instant, connections: &Slab<Connection>) -> Option<Due> {
        while let Some(due) = self.deadlines.pop_due(now) {
            if connections.get(due.key).is_some_and(|c| c.id() == due.id) {
                return Some(due);
            }
        }
        None
    }

    /// Takes an idle deadline that popped: `true` if the connection is idle
    /// past it and must be closed. Otherwise the entry is re-pushed at its
    /// current deadline, or dropped while it is parked (unparking re-arms).
    fn idle_due(&mut self, due: Due, conn: &mut Connection, now: Instant) -> bool {
        if conn.marks.idle_timer != Some(due.at) {
            return false; // a stale duplicate
        }
        conn.marks.idle_timer = None;
        if conn.is_parked() {
            return false;
        }
        if conn.idle_deadline(self.idle_timeout) <= now {
            return true;
        }
        self.arm_idle(due.key, conn);
        false
    }

    /// Takes the deadlines due at `now`: parked requests whose time is up
    /// go to `park_due` (the parking answers them); connections idle past
    /// their deadline, or still in their TLS handshake at its deadline, are
    /// added to `expired` with the timer that expired, for the loop to close.
    pub fn expire(
        &mut self,
        now: Instant,
        connections: &mut Slab<Connection>,
        mut park_due: impl FnMut(&mut Schedule, Due, &mut Connection),
        expired: &mut Vec<(usize, Timer)>,
    ) {
        while let Some(due) = self.pop_due(now, connections) {
            let conn = &mut connections[due.key];
            // Its idle and handshake deadlines may both be due: listed once.
            let listed = |expired: &Vec<(usize, Timer)>| expired.iter().any(|e| e.0 == due.key);
            match due.timer {
                Timer::Park => park_due(self, due, conn),
                Timer::Idle => {
                    if self.idle_due(due, conn, now) && !listed(expired) {
                        if self.idle_log.allow(now) {
                            info!(
                                "action: cerrar_conexion | result: success | peer: {} | motivo: no progress for {} ms",
                                conn.peer(),
                                self.idle_timeout.as_millis()
                            );
                        }
                        expired.push((due.key, Timer::Idle));
                    }
                }
                Timer::Handshake => {
                    if conn.is_handshaking() && !listed(expired) {
                        expired.push((due.key, Timer::Handshake));
                    }
                }
            }
        }
        if let Some(n) = self.idle_log.take_suppressed(now) {
            info!(
                "action: cerrar_conexion | result: success | lineas_suprimidas: {n} | motivo: no progress for {} ms",
                self.idle_timeout.as_millis()
            );
        }
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// The next queued connection still there, no longer marked queued.
    pub fn pop_ready(&mut self, connections: &mut Slab<Connection>) -> Option<usize> {
        while let Some((key, id)) = self.ready.pop_front() {
            if let Some(conn) = connections.get_mut(key).filter(|c| c.id() == id) {
                conn.marks.queued = false;
                return Some(key);
            }
        }
        None
    }

    /// Moves this iteration's touched connections still there to `keys`,
    /// no longer marked.
    pub fn take_touched(&mut self, connections: &mut Slab<Connection>, keys: &mut Vec<usize>) {
        for (key, id) in self.touched.drain(..) {
            if let Some(conn) = connections.get_mut(key).filter(|c| c.id() == id) {
                conn.marks.touched = false;
                keys.push(key);
            }
        }
    }

    /// Settles the replies the touched connections hold, as the commit went
    /// (they stay listed: the flush takes them). Those committing keep
    /// theirs held: a commit still under way decides them.
    pub fn settle_touched(&self, connections: &mut Slab<Connection>, committed: bool) {
        for &(key, id) in &self.touched {
            if let Some(conn) = connections.get_mut(key).filter(|c| c.id() == id)
                && !conn.marks.committing
            {
                conn.settle(committed);
            }
        }
    }

    /// A commit was started and is under way: the touched connections whose
    /// replies depend on it become committing (held until it is over); the
    /// others' replies depend on nothing staged and are settled now.
    pub fn hold_for_commit(&mut self, connections: &mut Slab<Connection>) {
        for &(key, id) in &self.touched {
            let Some(conn) = connections.get_mut(key).filter(|c| c.id() == id) else {
                continue;
            };
            if conn.replies().depends_on_commit() {
                if !conn.marks.committing {
                    conn.marks.committing = true;
                    self.committing.push((key, id));
                }
            } else {
                conn.settle(true);
            }
        }
    }

    /// The commit under way is over: its connections are touched again, no
    /// longer committing, for the commit's outcome to settle them and the
    /// flush to write them.
    pub fn touch_committing(&mut self, connections: &mut Slab<Connection>) {
        for (key, id) in std::mem::take(&mut self.committing) {
            if let Some(conn) = connections.get_mut(key).filter(|c| c.id() == id) {
                conn.marks.committing = false;
                self.touch(key, conn);
            }
        }
    }

    /// Lists a connection whose next request stages bets or a close while a
    /// commit is under way: it is not driven until [`Schedule::undefer`].
    pub fn defer(&mut self, key: usize, conn: &mut Connection) {
        if !conn.marks.deferred {
            conn.marks.deferred = true;
            self.deferred.push((key, conn.id()));
        }
    }

    /// The commit is over: every deferred connection is driven again.
    pub fn undefer(&mut self, connections: &mut Slab<Connection>) {
        for (key, id) in std::mem::take(&mut self.deferred) {
            if let Some(conn) = connections.get_mut(key).filter(|c| c.id() == id) {
                conn.marks.deferred = false;
                self.enqueue(key, conn);
            }
        }
    }
}
