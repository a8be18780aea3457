//! What the loop keeps for the observation port (`METRICS_PORT`), and the
//! [`Snapshot`] it takes when a request asks: the counts only the loop
//! sees (accepts, bytes of closed connections, each agency's last request,
//! when the draw happened) beside those of the central, the parking, the
//! acceptor and the TLS close log.
//!
//! Keeping them costs an add or a store per event; a snapshot walks the
//! agencies and the open connections once, and is taken only for a request.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slab::Slab;

use crate::central::state::Central;
use crate::connections::connection::{Connection, Traffic};
use crate::observe::http::Route;
use crate::observe::snapshot::{self, AgencyView, Snapshot};

/// The loop's own counts.
#[derive(Debug)]
pub struct Watch {
    /// The process's start, on both clocks.
    started: SystemTime,
    started_at: Instant,
    accepted: u64,
    /// What the closed connections read and wrote.
    closed: Traffic,
    /// When a request of each agency was last handled (index 0: agency 1).
    last_activity: Vec<Option<Instant>>,
    drawn_at: Option<Instant>,
}

/// The parts of the loop a snapshot reads, besides the [`Watch`].
pub struct Sources<'a> {
    pub central: &'a Central,
    pub connections: &'a Slab<Connection>,
    pub parked: usize,
    pub refused: u64,
    pub tls_handshakes_failed: u64,
    pub http_refused: u64,
}

impl Watch {
    /// `drawn`: the draw was recovered from a previous run (it counts as
    /// seen at start).
    pub fn new(agencies: u32, drawn: bool) -> Watch {
        let started_at = Instant::now();
        Watch {
            started: SystemTime::now(),
            started_at,
            accepted: 0,
            closed: Traffic::default(),
            last_activity: vec![None; agencies as usize],
            drawn_at: drawn.then_some(started_at),
        }
    }

    pub fn accepted(&mut self) {
        self.accepted += 1;
    }

    pub fn closed(&mut self, traffic: Traffic) {
        self.closed += traffic;
    }

    /// A request of `agency` was handled at `now`.
    pub fn activity(&mut self, agency: Option<u32>, now: Instant) {
        if let Some(slot) = agency
            .and_then(|a| (a as usize).checked_sub(1))
            .and_then(|i| self.last_activity.get_mut(i))
        {
            *slot = Some(now);
        }
    }

    /// The draw has just happened.
    pub fn drawn(&mut self, now: Instant) {
        self.drawn_at.get_or_insert(now);
    }

    /// `at` in unix seconds.
    fn unix_seconds(&self, at: Instant) -> f64 {
        let since_start = at.saturating_duration_since(self.started_at);
        (self.started + since_start)
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }

    pub fn snapshot(&self, s: Sources<'_>) -> Snapshot {
        let lottery = s.central.lottery();
        let agencies: Vec<AgencyView> = (1..=lottery.expected())
            .map(|agency| {
                let (stored, done) = lottery.durable(agency).unwrap_or_default();
                AgencyView {
                    agency,
                    bets_stored: u64::from(stored),
                    done,
                    last_activity_seconds: self.last_activity[agency as usize - 1]
                        .map(|at| self.unix_seconds(at)),
                    winners: if lottery.drawn() {
                        lottery.winners(agency).map_or(0, |w| w.len() as u64)
                    } else {
                        0
                    },
                }
            })
            .collect();
        let mut traffic = self.closed;
        for (_, conn) in s.connections {
            traffic += conn.traffic();
        }
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            start_time_seconds: self.unix_seconds(self.started_at),
            figures: s.central.figures().clone(),
            bets_stored: agencies.iter().map(|a| a.bets_stored).sum(),
            agencies_expected: lottery.expected(),
            agencies_done: lottery.closed(),
            drawn: lottery.drawn(),
            draw_time_seconds: self.drawn_at.map(|at| self.unix_seconds(at)),
            winners: agencies.iter().map(|a| a.winners).sum(),
            requests_parked: s.parked as u64,
            connections_open: s.connections.len() as u64,
            connections_accepted: self.accepted,
            connections_refused: s.refused,
            tls_handshakes_failed: s.tls_handshakes_failed,
            received_bytes: traffic.received,
            sent_bytes: traffic.sent,
            http_connections_refused: s.http_refused,
            agencies,
        }
    }
}

/// The content type and body that answer `route`.
pub fn render(route: Route, snapshot: impl FnOnce() -> Snapshot) -> (&'static str, Vec<u8>) {
    match route {
        Route::Metrics => (
            snapshot::PROMETHEUS_CONTENT_TYPE,
            snapshot::to_prometheus(snapshot()).into_bytes(),
        ),
        Route::Status => (
            "application/json",
            snapshot::to_json(&snapshot()).into_bytes(),
        ),
        Route::Page => (
            "text/html; charset=utf-8",
            crate::observe::PAGE.as_bytes().to_vec(),
        ),
    }
}
