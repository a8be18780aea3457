//! The central's state apart from its sockets: the [`Lottery`], the
//! [`Store`] (whichever backend, behind the seam), today's date, and the
//! commit group.
//!
//! Requests change it through the `stage_*` methods: each change goes to the
//! lottery (so the next request of the same iteration sees it), to the
//! store's buffers, and to the [`Group`], which remembers what to log once
//! the commit says whether the store took it. Invariant: everything staged
//! since the last commit is in all three, and one commit settles all three
//! (the held replies are settled by the loop with the same outcome). A
//! commit is started ([`Central::start_commit`]) and, for a store that
//! commits on a thread of its own, finished later
//! ([`Central::finish_commit`]); nothing is staged in between.

use std::io;
use std::time::{Duration, Instant};

use log::{debug, error, info, log_enabled, warn};

use super::lottery::{DoneVerdict, Lottery};
use crate::bets::bet::{self, InvalidBet};
use crate::observe::figures::Figures;
use crate::store::open::{self, OpenError, StoreSettings};
use crate::store::seam::{
    BatchToStage, CommitError, CommitStats, News, RecoveredAgency, Started, Store,
};
use crate::support::log_budget::Tally;
use crate::wire::{Bets, Date, ErrorCode};

/// What this iteration staged, kept to be logged after its commit.
#[derive(Debug, Default)]
struct Group {
    /// Agency and how many bets each ACKed batch stored.
    batches: Vec<(u32, u32)>,
    /// Batches whose bets were all stored already (ACKed again).
    retried: u64,
    /// Retried batches of committed groups, logged as one count at most
    /// once a second: a retry is a few bytes in, and a line each would let
    /// a peer grow the log without bound.
    retries: Tally,
    /// Agency and total of each staged close.
    closes: Vec<(u32, u32)>,
    /// Documents and numbers of the staged bets, kept only when DEBUG
    /// logging wants a line per stored bet.
    bets: Vec<(Box<str>, u16)>,
}

/// How a commit went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The disk took the group: its held replies may go out as they are.
    pub committed: bool,
    /// This commit closed the last agency: the draw happened.
    pub drew: bool,
    /// The store can no longer keep what was acknowledged: the central
    /// must stop (the error, as logged).
    pub fatal: Option<String>,
}

/// Whether a connection has seen its agency's counts read from a store
/// other centrals also write (always so for a store only this one writes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CountsSeen {
    /// Its requests wait until it has.
    #[default]
    Unread,
    /// A read was asked for it: it goes on once that read is in.
    Asked,
    Read,
}

/// Where the read of an agency's counts stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Reading {
    #[default]
    Idle,
    /// To be asked of the store at this iteration's end.
    Wanted,
    /// Asked; its answer is awaited.
    Sent,
    /// Asked, and asked again since by a connection that bound the agency
    /// after the first was sent: a second read follows the first.
    SentAgain,
}

/// What the store's news changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// Counts were read: connections waiting for them go on.
    pub counts: bool,
    /// The draw, recorded by another central: every parked request wakes.
    pub drew: bool,
}

pub struct Central {
    lottery: Lottery,
    store: Box<dyn Store>,
    today: Date,
    group: Group,
    /// Commits failed in a row: the first is logged `result: fail`, the
    /// rest only at DEBUG, and the commit that ends the incident says so.
    failed_commits: u64,
    /// A commit is under way on the store's thread.
    under_way: bool,
    /// Per agency (index 0 is agency 1), its counts' read, for a store
    /// other centrals also write; and those to ask for.
    reading: Vec<Reading>,
    wanted: Vec<u32>,
    /// When the store's commit under way (or just done) started.
    commit_started: Instant,
    /// What `/metrics` shows of the batches and commits.
    figures: Figures,
}

impl Central {
    /// Opens the store (recovering a previous run) and logs what it held.
    pub fn open(
        store: &StoreSettings,
        agencies: u32,
        winning_number: u16,
    ) -> Result<Central, OpenError> {
        let (store, recovery) = open::open(store, agencies, winning_number)?;
        let stored: u64 = recovery.agencies.iter().map(|a| a.stored as u64).sum();
        let closed = recovery.agencies.iter().filter(|a| a.closed).count();
        info!(
            "action: recuperar | result: success | apuestas: {stored} | agencias_cerradas: {closed} | {}",
            store.location()
        );
        let mut lottery = Lottery::recovered(recovery.agencies, winning_number);
        if lottery.drawn() {
            info!("action: sorteo | result: success");
        }
        if store.shared() {
            lottery.leave_draw_to_store();
        }
        Ok(Central {
            lottery,
            store,
            today: bet::today(),
            group: Group::default(),
            failed_commits: 0,
            under_way: false,
            reading: vec![Reading::Idle; agencies as usize],
            wanted: Vec::new(),
            commit_started: Instant::now(),
            figures: Figures::default(),
        })
    }

    pub fn lottery(&self) -> &Lottery {
        &self.lottery
    }

    /// The counts of batches and commits, for `/metrics`.
    pub fn figures(&self) -> &Figures {
        &self.figures
    }

    /// A batch was answered `ERROR code`.
    pub fn count_refused(&mut self, code: ErrorCode) {
        self.figures.batch_refused(code as u8);
    }

    /// The date bets' birthdates are checked against.
    pub fn today(&self) -> Date {
        self.today
    }

    pub fn refresh_today(&mut self) {
        self.today = bet::today();
    }

    /// Whether a connection that has `seen` what it has of `agency`'s counts
    /// may act on them now. With a store other centrals also write, the
    /// first request that names a known agency waits until its counts are
    /// read from the store (asked here): an agency that moved from another
    /// central is never told a count below the one it was acknowledged.
    pub fn counts_seen(&mut self, agency: u32, seen: &mut CountsSeen) -> bool {
        if *seen == CountsSeen::Read {
            return true;
        }
        if !self.store.shared() || self.lottery.check_agency(agency).is_err() {
            *seen = CountsSeen::Read;
            return true;
        }
        let reading = &mut self.reading[agency as usize - 1];
        if *seen == CountsSeen::Asked {
            if *reading == Reading::Idle {
                *seen = CountsSeen::Read;
                return true;
            }
            return false;
        }
        *seen = CountsSeen::Asked;
        match *reading {
            Reading::Idle => {
                *reading = Reading::Wanted;
                self.wanted.push(agency);
            }
            Reading::Sent => *reading = Reading::SentAgain,
            Reading::Wanted | Reading::SentAgain => {}
        }
        false
    }

    /// Asks the store for the counts wanted this iteration.
    pub fn ask_counts(&mut self) {
        if self.wanted.is_empty() {
            return;
        }
        for &agency in &self.wanted {
            self.reading[agency as usize - 1] = Reading::Sent;
        }
        self.store.read_counts(&self.wanted);
        self.wanted.clear();
    }

    /// Applies what the store learned (only with nothing staged, nothing
    /// under way: the lottery's counts are durable ones then).
    pub fn learn(&mut self) -> Learned {
        let mut learned = Learned::default();
        while !self.under_way && !self.store.has_staged() {
            let Some(news) = self.store.news() else {
                break;
            };
            match news {
                News::Counts(counts) => {
                    for (agency, stored, closed) in counts {
                        self.lottery.raise(agency, stored, closed);
                        let reading = &mut self.reading[agency as usize - 1];
                        match *reading {
                            Reading::Sent => *reading = Reading::Idle,
                            Reading::SentAgain => {
                                *reading = Reading::Wanted;
                                self.wanted.push(agency);
                            }
                            Reading::Idle | Reading::Wanted => {}
                        }
                    }
                    learned.counts = true;
                }
                News::Held(counts) => {
                    for (agency, stored, closed) in counts {
                        self.lottery.raise(agency, stored, closed);
                    }
                }
                News::Drawn(agencies) => {
                    if self.adopt_draw(agencies) {
                        info!(
                            "action: sorteo | result: success | detail: recorded by another central"
                        );
                        learned.drew = true;
                    }
                }
            }
        }
        learned
    }

    /// Adopts the draw the store recorded; whether it is new here.
    fn adopt_draw(&mut self, agencies: Vec<RecoveredAgency>) -> bool {
        let winners: usize = agencies.iter().map(|a| a.winners.len()).sum();
        let newly = self.lottery.adopt_draw(agencies);
        if newly {
            debug!("action: leer_ganadores | result: success | ganadores: {winners}");
        }
        newly
    }

    /// How many bets wait for the next commit.
    pub fn staged_bets(&self) -> u64 {
        self.store.staged_bets()
    }

    /// A batch whose bets are all stored already: ACKed again, stores nothing.
    pub fn stage_retry(&mut self) {
        self.group.retried += 1;
    }

    /// Checks and stages the `bets` of `agency` from index `skip` on (the
    /// caller checked those before `skip`); returns the agency's stored count
    /// with them. At an invalid bet nothing of the batch is staged anywhere.
    pub fn stage_bets(
        &mut self,
        agency: u32,
        first: u32,
        bets: Bets<'_>,
        skip: usize,
    ) -> Result<u32, InvalidBet> {
        // The store checks each bet as it writes it, and picks the winners
        // out in the same walk: one walk of its bytes.
        let mut winners = Vec::new();
        let batch = BatchToStage {
            agency,
            first,
            bets,
            skip,
            today: self.today,
            winning: self.lottery.winning_number(),
        };
        self.store.stage_bets(batch, &mut winners)?;
        self.lottery
            .stage_batch(agency, (bets.len() - skip) as u32, winners.into_iter());
        if log_enabled!(log::Level::Debug) {
            for b in bets.iter().skip(skip) {
                let document = String::from_utf8_lossy(b.document);
                self.group.bets.push((document.into(), b.number));
            }
        }
        self.group
            .batches
            .push((agency, (bets.len() - skip) as u32));
        Ok(self.lottery.stored(agency).unwrap_or_default())
    }

    /// Decides a DONE; a close is staged in all three places.
    pub fn stage_done(&mut self, agency: u32, total: u32) -> DoneVerdict {
        let verdict = self.lottery.done(agency, total);
        if verdict == DoneVerdict::Close {
            self.store.stage_close(agency, total);
            self.group.closes.push((agency, total));
        }
        verdict
    }

    /// Starts the group commit of everything staged: a store that commits
    /// on this thread (CSV: one write and one sync) has finished it when
    /// this returns `Some`; otherwise the outcome comes from
    /// [`Central::finish_commit`] once the store's waker fires, and nothing
    /// is staged until then.
    pub fn start_commit(&mut self) -> Option<Commit> {
        if !self.store.has_staged() {
            // Nothing to make durable (retries and read-only answers): the
            // group is settled as committed, and says nothing of the store.
            let drew = self.lottery.commit();
            self.log_group(true);
            return Some(Commit {
                committed: true,
                drew,
                fatal: None,
            });
        }
        self.commit_started = Instant::now();
        match self.store.start_commit(self.lottery.draw_pending()) {
            Started::Done(finished) => Some(self.settle(finished.result, finished.drawn)),
            Started::Pending => {
                self.under_way = true;
                None
            }
        }
    }

    /// Whether a commit is under way: nothing may be staged until it is over.
    pub fn commit_under_way(&self) -> bool {
        self.under_way
    }

    /// The outcome of the commit under way, once the store has it.
    pub fn finish_commit(&mut self) -> Option<Commit> {
        let finished = self.store.finish_commit()?;
        self.under_way = false;
        Some(self.settle(finished.result, finished.drawn))
    }

    /// Waits at most `timeout` for the commit under way (shutdown only).
    pub fn wait_commit(&mut self, timeout: Duration) -> Option<Commit> {
        let finished = self.store.wait_commit(timeout)?;
        self.under_way = false;
        Some(self.settle(finished.result, finished.drawn))
    }

    /// Gives up on the commit under way (shutdown): its outcome is
    /// unknown, so it is settled as failed, and nothing of it acknowledged.
    pub fn abandon_commit(&mut self) -> Commit {
        self.under_way = false;
        error!(
            "action: guardar_apuestas | result: fail | error: shutdown with a commit under way | {} | detail: its outcome is unknown and nothing of it was acknowledged",
            self.store.location()
        );
        self.lottery.rollback();
        self.log_group(false);
        Commit {
            committed: false,
            drew: false,
            fatal: None,
        }
    }

    /// Registers the store's waker, for a store whose commits finish on a
    /// thread of its own.
    pub fn register(&mut self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        self.store.register(registry, token)
    }

    /// A commit is over: the lottery commits or rolls back, and the group
    /// is logged.
    fn settle(
        &mut self,
        result: Result<CommitStats, CommitError>,
        drawn: Option<Result<Vec<RecoveredAgency>, CommitError>>,
    ) -> Commit {
        let mut fatal = None;
        let took = self.commit_started.elapsed();
        let recovered = result.is_ok() && self.failed_commits > 0;
        if let Ok(stats) = &result {
            debug!(
                "action: commit_grupo | result: success | apuestas: {} | cierres: {} | ms: {:.3}",
                stats.bets,
                stats.closes,
                took.as_secs_f64() * 1000.0
            );
        }
        self.figures.commit_over(result.is_ok(), took, recovered);
        let committed = match result {
            Ok(_) => {
                if self.failed_commits > 0 {
                    info!(
                        "action: guardar_apuestas | result: success | reconectado: {} | commits_fallidos: {}",
                        self.store.location(),
                        self.failed_commits
                    );
                    self.failed_commits = 0;
                }
                true
            }
            Err(e) => {
                let text = e.to_string().replace('|', "/");
                if e.fatal {
                    error!(
                        "action: guardar_apuestas | result: fail | error: {text} | detail: the central stops and acknowledges nothing more"
                    );
                    fatal = Some(text);
                } else if self.failed_commits == 0 {
                    // Once per incident: an unreachable store fails every
                    // commit until it is back.
                    error!("action: guardar_apuestas | result: fail | error: {text}");
                } else {
                    debug!("action: guardar_apuestas | result: fail | error: {text}");
                }
                self.failed_commits += 1;
                false
            }
        };
        let mut drew = if committed {
            self.lottery.commit()
        } else {
            self.lottery.rollback();
            false
        };
        match drawn {
            Some(Ok(agencies)) => drew |= self.adopt_draw(agencies),
            Some(Err(e)) => {
                // Read again by the store's thread until it is in.
                let e = e.to_string().replace('|', "/");
                warn!(
                    "action: leer_ganadores | result: fail | error: {e} | detail: the draw is recorded; its winners are read again"
                );
            }
            None => {}
        }
        self.log_group(committed);
        if drew {
            info!("action: sorteo | result: success");
        }
        Commit {
            committed,
            drew,
            fatal,
        }
    }

    fn log_group(&mut self, committed: bool) {
        // A retry whose commit failed was answered ERROR STORAGE, and the
        // failure has its own line.
        let retried = std::mem::take(&mut self.group.retried);
        if committed {
            self.group.retries.add(retried);
            self.figures.batches_retried += retried;
        } else {
            self.figures.batches_refused[ErrorCode::Storage as usize] += retried;
        }
        if !self.group.retries.is_empty()
            && let Some(n) = self.group.retries.take_due(Instant::now())
        {
            info!("action: lotes_reintentados | result: success | lotes: {n}");
        }
        for (agency, stored) in self.group.batches.drain(..) {
            if committed {
                self.figures.batch_stored(stored);
                info!("action: apuesta_recibida | result: success | cantidad: {stored}");
            } else {
                self.figures.batch_refused(ErrorCode::Storage as u8);
                warn!(
                    "action: apuesta_recibida | result: fail | cantidad: {stored} | agencia: {agency} | error: STORAGE"
                );
            }
        }
        for (document, number) in self.group.bets.drain(..) {
            if committed {
                debug!(
                    "action: apuesta_almacenada | result: success | dni: {document} | numero: {number}"
                );
            }
        }
        for (agency, total) in self.group.closes.drain(..) {
            if committed {
                info!(
                    "action: agencia_cerrada | result: success | agencia: {agency} | total: {total}"
                );
            } else {
                warn!(
                    "action: agencia_cerrada | result: fail | agencia: {agency} | total: {total} | error: STORAGE"
                );
            }
        }
    }

    /// Makes the store durable and closes it, logging a failure.
    pub fn close(self) -> io::Result<()> {
        let location = self.store.location();
        self.store.close().inspect_err(|e| {
            error!("action: cerrar_archivo | result: fail | {location} | error: {e}");
        })
    }
}
