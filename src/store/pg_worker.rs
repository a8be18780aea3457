//! The PostgreSQL store's thread: it owns every connection to the database
//! and does all of the store's talking to it (the open and the recovery,
//! each group's commit, the reads after a failure and at the draw), so the
//! central's loop never waits for the database.
//!
//! The loop hands it a group ([`Job`]) and goes on serving every other
//! connection; the thread commits the group and hands the outcome back
//! ([`Outcome`]) through a channel, then fires the loop's [`mio::Waker`].
//! One group is under way at a time. Why a thread and not the commit's
//! future polled from the loop: the tokio-postgres connections are driven by
//! a tokio reactor, which a mio loop cannot poll without a second reactor
//! inside it; the thread runs one current-thread runtime all the time, so
//! the connections' drivers (notices, keepalives) run between commits too.
//!
//! What the thread keeps: what it knows the database holds ([`Held`]: what
//! it found at the open, plus each group it committed since). After any
//! failure it connects again and reads what the database holds; less than
//! it knows (an agency's bets or close gone: rows deleted, a restore, a
//! lagging standby promoted) is fatal ([`CommitError::fatal`]), and so is a
//! hole in an agency's positions; more (a commit reported failed that the
//! engine kept) refuses the group once, and the loop stages the next one
//! against the new counts.
//!
//! Other centrals may write the same database (the store is shared): the
//! thread reads an agency's count when the loop asks ([`Task::ReadCounts`],
//! at each bind), and listens for the draw on
//! [`pg_schema::DRAWN_CHANNEL`] (listened again after every reconnect, and
//! polled every [`DRAW_POLL`] until seen, in case a notification was lost
//! with a connection). What it learns goes to the loop as [`News`].
//!
//! A commit still under way after [`COMMIT_STALL`] is logged once per
//! incident, with what the server says it waits for (a synchronous standby
//! that is gone, most often). It is never abandoned: a commit waiting for
//! its synchronous standby is not on the standby yet, and giving up on it
//! would leave it visible on the primary, then acknowledged by a retry.

use std::io;
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, info};
use tokio::sync::mpsc as tokio_mpsc;
use tokio_postgres::Client;

use super::pg_schema::{self, DRAWN_CHANNEL, Held, LOTTERY, PgError, describe};
use super::pg_sessions::{self, COPY_BETS, CommitFailure, Heard, INSERT_CLOSES, Sessions, Split};
use super::seam::{CommitError, CommitStats, Finished, News, RecoveredAgency};

/// How long a commit may be under way before it is logged as stalled.
pub const COMMIT_STALL: Duration = Duration::from_secs(3);
/// How long the probe of a stalled commit may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the thread looks for a draw it has not heard of, and tries
/// again the counts it could not read.
pub const DRAW_POLL: Duration = Duration::from_secs(1);

/// The first wait after a failure, and the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
// Short: a database that fails over is back within seconds, and the
// lottery should be too.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A group for the thread to commit.
#[derive(Debug)]
pub struct Job {
    pub split: Split,
    /// `(agency, bets)` of every agency with bets in the group.
    pub staged: Vec<(u32, u32)>,
    pub bets: u64,
    /// The commit runs the draw if it succeeds: the winners are read back.
    pub draws: bool,
}

/// What the loop asks of the thread.
#[derive(Debug)]
pub enum Task {
    Commit(Box<Job>),
    /// Read what the database holds of these agencies (answered as
    /// [`News::Counts`]).
    ReadCounts(Vec<u32>),
}

/// What the thread tells the loop, in the order it happened.
#[derive(Debug)]
pub enum Report {
    Committed(Box<Outcome>),
    News(News),
    /// The `seq` the next bet may take, at least: past the last bet of
    /// agencies whose counts were read, so an agency's bets stay in `seq`
    /// order whichever central stored them.
    NextSeq(i64),
}

/// What became of a [`Job`]; its buffers come back, for the next.
#[derive(Debug)]
pub struct Outcome {
    pub split: Split,
    pub staged: Vec<(u32, u32)>,
    pub finished: Finished,
    /// What the database holds, read again after a failure: the next group
    /// is staged against it.
    pub held: Option<Held>,
}

/// The loop's handle on the thread.
pub struct Worker {
    jobs: tokio_mpsc::UnboundedSender<Task>,
    outcomes: mpsc::Receiver<Report>,
    waker: Arc<OnceLock<mio::Waker>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread, which connects, makes or checks the tables and
    /// recovers what they hold; returns once it has.
    pub fn start(
        config: tokio_postgres::Config,
        location: String,
        agencies: u32,
        winning_number: u16,
    ) -> Result<(Worker, Held, super::seam::Recovery), PgError> {
        let (jobs, job_rx) = tokio_mpsc::unbounded_channel();
        let (outcome_tx, outcomes) = mpsc::channel();
        let (open_tx, open_rx) = mpsc::channel();
        let waker = Arc::new(OnceLock::new());
        let thread_waker = Arc::clone(&waker);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PgError::Connect {
                location: location.clone(),
                why: format!("cannot start the store's runtime: {e}"),
            })?;
        let committer = Committer {
            config,
            location: location.clone(),
            agencies,
            winning_number,
            conn: None,
            backoff: Backoff::default(),
            known: Held::default(),
            stalled: false,
            drawn_told: false,
            unread: Vec::new(),
            set_back_logged: false,
        };
        let thread = std::thread::Builder::new()
            .name("lottery-store".into())
            .spawn(move || {
                runtime.block_on(committer.run(open_tx, job_rx, outcome_tx, thread_waker));
            })
            .map_err(|e| PgError::Connect {
                location: location.clone(),
                why: format!("cannot start the store's thread: {e}"),
            })?;
        let (held, recovery) = open_rx.recv().map_err(|_| PgError::Connect {
            location,
            why: "the store's thread ended during the open".into(),
        })??;
        let worker = Worker {
            jobs,
            outcomes,
            waker,
            thread: Some(thread),
        };
        Ok((worker, held, recovery))
    }

    /// Hands a group to the thread; gives it back if the thread is gone.
    pub fn send(&self, job: Job) -> Result<(), Box<Job>> {
        self.jobs
            .send(Task::Commit(Box::new(job)))
            .map_err(|e| match e.0 {
                Task::Commit(job) => job,
                Task::ReadCounts(_) => unreachable!("sent a commit"),
            })
    }

    /// Asks the thread for what the database holds of `agencies`.
    pub fn read_counts(&self, agencies: Vec<u32>) {
        // A thread gone is seen by the next commit.
        let _ = self.jobs.send(Task::ReadCounts(agencies));
    }

    /// The next report, if one is in.
    pub fn try_report(&self) -> Option<Report> {
        self.outcomes.try_recv().ok()
    }

    /// Waits at most `timeout` for the next report.
    pub fn wait_report(&self, timeout: Duration) -> Option<Report> {
        self.outcomes.recv_timeout(timeout).ok()
    }

    pub fn register(&self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        let waker = mio::Waker::new(registry, token)?;
        self.waker
            .set(waker)
            .map_err(|_| io::Error::other("the store's waker is registered already"))
    }

    /// Lets the thread go: it ends once idle. A group still under way is
    /// not waited for (its outcome is unknown, and nothing of it was
    /// acknowledged).
    pub fn stop(mut self, busy: bool) {
        let thread = self.thread.take();
        drop(self);
        if !busy && let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The thread's state.
struct Committer {
    config: tokio_postgres::Config,
    location: String,
    agencies: u32,
    winning_number: u16,
    conn: Option<Connected>,
    backoff: Backoff,
    /// What this central knows the database holds: less there is a set-back.
    known: Held,
    /// A stalled commit was logged, and no commit has finished in time since.
    stalled: bool,
    /// The draw was told to the loop.
    drawn_told: bool,
    /// Agencies whose counts the loop asked for and could not be read yet.
    unread: Vec<u32>,
    /// A set-back found between commits was logged (once).
    set_back_logged: bool,
}

/// The thread's connections: the commits' sessions and one for the reads.
struct Connected {
    sessions: Sessions,
    reader: Client,
}

impl Committer {
    async fn run(
        mut self,
        open: mpsc::Sender<Result<(Held, super::seam::Recovery), PgError>>,
        mut tasks: tokio_mpsc::UnboundedReceiver<Task>,
        reports: mpsc::Sender<Report>,
        waker: Arc<OnceLock<mio::Waker>>,
    ) {
        let (heard_tx, mut heard) = tokio_mpsc::unbounded_channel();
        match self.open(&heard_tx).await {
            Ok(opened) => {
                self.drawn_told = opened.0.closed.iter().all(|&c| c);
                if open.send(Ok(opened)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = open.send(Err(e));
                return;
            }
        }
        let tell = |report: Report| {
            let sent = reports.send(report).is_ok();
            if let Some(waker) = waker.get() {
                let _ = waker.wake();
            }
            sent
        };
        loop {
            let mut told = Vec::new();
            tokio::select! {
                task = tasks.recv() => match task {
                    None => return,
                    Some(Task::Commit(job)) => {
                        let outcome = self.commit(*job, &heard_tx).await;
                        told.push(Report::Committed(Box::new(outcome)));
                    }
                    Some(Task::ReadCounts(agencies)) => {
                        self.unread.extend(agencies);
                        self.catch_up(&heard_tx, &mut told).await;
                    }
                },
                Some(h) = heard.recv() => {
                    if h == Heard::Lost
                        && self.conn.as_ref().is_some_and(|c| c.reader.is_closed())
                    {
                        self.conn = None;
                    }
                    self.catch_up(&heard_tx, &mut told).await;
                }
                _ = tokio::time::sleep(DRAW_POLL) => {
                    self.catch_up(&heard_tx, &mut told).await;
                }
            }
            for report in told {
                if !tell(report) {
                    return;
                }
            }
        }
    }

    /// Between commits: reads the counts asked for and not read yet, and
    /// the draw if it is recorded and not told yet, connecting again first
    /// if the connection was lost (within the backoff).
    async fn catch_up(
        &mut self,
        heard: &tokio_mpsc::UnboundedSender<Heard>,
        told: &mut Vec<Report>,
    ) {
        if self.unread.is_empty() && self.drawn_told {
            return;
        }
        if self.conn.is_none() {
            if self.backoff.wait(Instant::now()).is_some() {
                return;
            }
            match self.reconnect(heard).await {
                Ok(held) => {
                    if held != self.known {
                        told.push(Report::News(News::Held(all_counts(&held))));
                    }
                    self.known = held;
                }
                Err(e) => {
                    self.backoff.failed(Instant::now());
                    if e.fatal && !self.set_back_logged {
                        // Once: the next commit finds it again and stops
                        // the central.
                        self.set_back_logged = true;
                        error!(
                            "action: leer_base | result: fail | error: {}",
                            e.to_string().replace('|', "/")
                        );
                    }
                    return;
                }
            }
        }
        if let Err(e) = self.read_unread(told).await {
            debug!("action: leer_base | result: fail | error: {}", describe(&e));
            self.conn = None;
            self.backoff.failed(Instant::now());
            return;
        }
        if let Some(news) = self.read_draw().await {
            told.push(Report::News(news));
        }
    }

    /// The counts asked for, as [`News::Counts`]; they raise what this
    /// central knows the database holds.
    async fn read_unread(&mut self, told: &mut Vec<Report>) -> Result<(), tokio_postgres::Error> {
        if self.unread.is_empty() {
            return Ok(());
        }
        self.unread.sort_unstable();
        self.unread.dedup();
        let reader = &self.conn.as_ref().expect("connected").reader;
        let rows = pg_schema::read_counts(reader, &self.unread).await?;
        self.unread.clear();
        let mut counts = Vec::with_capacity(rows.len());
        for (agency, stored, closed, seq) in rows {
            let index = agency as usize - 1;
            let known = &mut self.known;
            known.stored[index] = known.stored[index].max(stored);
            known.closed[index] |= closed;
            known.next_seq = known.next_seq.max(seq + 1);
            counts.push((agency, stored, closed, seq));
        }
        told.push(Report::News(News::Counts(
            counts.iter().map(|&(a, s, c, _)| (a, s, c)).collect(),
        )));
        if let Some(seq) = counts.iter().map(|c| c.3).max() {
            told.push(Report::NextSeq(seq + 1));
        }
        Ok(())
    }

    /// The draw, if it is recorded and not told yet.
    async fn read_draw(&mut self) -> Option<News> {
        if self.drawn_told {
            return None;
        }
        let reader = &self.conn.as_ref()?.reader;
        match pg_schema::read_draw(reader, &self.location, self.agencies, self.winning_number).await
        {
            Ok(Some(agencies)) => {
                self.drawn_told = true;
                self.raise_known(&agencies);
                Some(News::Drawn(agencies))
            }
            Ok(None) => None,
            Err(e) => {
                debug!(
                    "action: leer_sorteo | result: fail | error: {}",
                    e.to_string().replace('|', "/")
                );
                self.conn = None;
                self.backoff.failed(Instant::now());
                None
            }
        }
    }

    fn raise_known(&mut self, agencies: &[RecoveredAgency]) {
        for (index, a) in agencies.iter().enumerate() {
            self.known.stored[index] = self.known.stored[index].max(a.stored);
            self.known.closed[index] |= a.closed;
        }
    }

    async fn open(
        &mut self,
        heard: &tokio_mpsc::UnboundedSender<Heard>,
    ) -> Result<(Held, super::seam::Recovery), PgError> {
        let connect = |e: tokio_postgres::Error| PgError::Connect {
            location: self.location.clone(),
            why: describe(&e),
        };
        let mut reader = pg_sessions::connect_listening(&self.config, Some(heard.clone()))
            .await
            .map_err(connect)?;
        reader
            .batch_execute(&format!("LISTEN {DRAWN_CHANNEL}"))
            .await
            .map_err(connect)?;
        let (held, recovery) = pg_schema::open(
            &mut reader,
            &self.location,
            self.agencies,
            self.winning_number,
        )
        .await?;
        let sessions = Sessions::connect(&self.config).await.map_err(connect)?;
        self.conn = Some(Connected { sessions, reader });
        self.known = held.clone();
        Ok((held, recovery))
    }

    async fn commit(
        &mut self,
        mut job: Job,
        heard: &tokio_mpsc::UnboundedSender<Heard>,
    ) -> Outcome {
        let mut held = None;
        let result = self.try_commit(&mut job, &mut held, heard).await;
        let (result, drawn) = match result {
            Ok((stats, drawn)) => (Ok(stats), drawn),
            Err(e) => (Err(e), None),
        };
        // The split comes back empty; `staged` as it was, for the loop to
        // move its counts on by.
        job.split.clear();
        Outcome {
            split: job.split,
            staged: job.staged,
            finished: Finished { result, drawn },
            held,
        }
    }

    #[allow(clippy::type_complexity)]
    async fn try_commit(
        &mut self,
        job: &mut Job,
        held_out: &mut Option<Held>,
        heard: &tokio_mpsc::UnboundedSender<Heard>,
    ) -> Result<
        (
            CommitStats,
            Option<Result<Vec<RecoveredAgency>, CommitError>>,
        ),
        CommitError,
    > {
        if self.conn.is_none() {
            // Commits within the backoff are refused without a try, and do
            // not push the next try further away.
            if let Some(wait) = self.backoff.wait(Instant::now()) {
                return Err(CommitError::failed(format!(
                    "PostgreSQL at {} unavailable, next try in {} ms",
                    self.location,
                    wait.as_millis()
                )));
            }
            let held = match self.reconnect(heard).await {
                Ok(held) => held,
                Err(e) => {
                    self.backoff.failed(Instant::now());
                    return Err(e);
                }
            };
            let kept = held.stored != self.known.stored || held.closed != self.known.closed;
            self.known = held.clone();
            *held_out = Some(held);
            if kept {
                return Err(CommitError::failed(
                    "the database kept a commit that was reported failed; this group is \
                     refused and the agencies' retries store what is missing",
                ));
            }
        }
        let closes: Vec<(i32, i64)> = job
            .split
            .shares()
            .iter()
            .flat_map(|s| s.closes().iter().copied().zip(s.totals().iter().copied()))
            .collect();
        let stats = CommitStats {
            bets: job.bets,
            closes: closes.len() as u64,
        };
        let drew = match self.run_commit(&mut job.split).await {
            Ok(drew) => drew,
            Err(failure) => {
                self.conn = None;
                self.backoff.failed(Instant::now());
                return Err(match failure {
                    CommitFailure::Hole { agency, position } => CommitError::fatal(format!(
                        "PostgreSQL at {} does not hold bet {position} of agency {agency}, which \
                         this central acknowledged: the database was set back (rows deleted, a \
                         restore, or a standby promoted that had not received every commit)",
                        self.location
                    )),
                    CommitFailure::Postgres(e) => {
                        CommitError::failed(format!("{}: {}", self.location, describe(&e)))
                    }
                });
            }
        };
        self.backoff.succeeded();
        for &(agency, bets) in &job.staged {
            self.known.stored[agency as usize - 1] += bets;
        }
        for &(agency, _) in &closes {
            self.known.closed[agency as usize - 1] = true;
        }
        // The draw read back when this commit recorded it, or when this
        // central's count says it should have: another central's close may
        // have completed the set first.
        let drawn = if (drew || job.draws) && !self.drawn_told {
            let reader = &self.conn.as_ref().expect("connected").reader;
            match pg_schema::read_draw(reader, &self.location, self.agencies, self.winning_number)
                .await
            {
                Ok(Some(agencies)) => {
                    self.drawn_told = true;
                    self.raise_known(&agencies);
                    Some(Ok(agencies))
                }
                Ok(None) => None,
                Err(e) => Some(Err(CommitError::failed(e.to_string()))),
            }
        } else {
            None
        };
        Ok((stats, drawn))
    }

    /// Connects again after a failure and reads what the database holds,
    /// refusing a database that holds less than this central knows it does.
    async fn reconnect(
        &mut self,
        heard: &tokio_mpsc::UnboundedSender<Heard>,
    ) -> Result<Held, CommitError> {
        let unreachable = |e: tokio_postgres::Error| {
            CommitError::failed(format!(
                "cannot connect to {}: {}",
                self.location,
                describe(&e)
            ))
        };
        let reader = pg_sessions::connect_listening(&self.config, Some(heard.clone()))
            .await
            .map_err(unreachable)?;
        // Listened again before anything is read: a draw recorded after
        // this is heard, one recorded before it is read.
        reader
            .batch_execute(&format!("LISTEN {DRAWN_CHANNEL}"))
            .await
            .map_err(unreachable)?;
        let held = pg_schema::read_held(&reader, &self.location, self.agencies)
            .await
            .map_err(|e| match e {
                PgError::Query { .. } => CommitError::failed(e.to_string()),
                _ => CommitError::fatal(e.to_string()),
            })?;
        if let Some(why) = set_back(&self.known, &held) {
            return Err(CommitError::fatal(format!(
                "PostgreSQL at {} was set back: {why}. It no longer holds what this central \
                 acknowledged (rows deleted, a restore, or a standby promoted that had not \
                 received every commit)",
                self.location
            )));
        }
        let sessions = Sessions::connect(&self.config).await.map_err(unreachable)?;
        self.conn = Some(Connected { sessions, reader });
        Ok(held)
    }

    /// The group's commit; past [`COMMIT_STALL`] the stall is logged (once
    /// per incident) with its likely cause, and the commit waited for.
    async fn run_commit(&mut self, split: &mut Split) -> Result<bool, CommitFailure> {
        let Connected { sessions, reader } = self.conn.as_mut().expect("connected");
        let pids = sessions.pids().to_vec();
        let started = Instant::now();
        let mut commit = std::pin::pin!(sessions.commit(split, COPY_BETS, INSERT_CLOSES, LOTTERY));
        match tokio::time::timeout(COMMIT_STALL, &mut commit).await {
            Ok(result) => {
                if self.stalled {
                    self.stalled = false;
                    info!(
                        "action: guardar_apuestas | result: success | detail: commits finish in time again | base_de_datos: {}",
                        self.location
                    );
                }
                result
            }
            Err(_) => {
                if !self.stalled {
                    self.stalled = true;
                    let cause = stall_cause(reader, &pids).await.replace('|', "/");
                    error!(
                        "action: guardar_apuestas | result: fail | error: COMMIT_STALLED | espera_ms: {} | base_de_datos: {} | causa_probable: {cause}",
                        started.elapsed().as_millis(),
                        self.location
                    );
                }
                commit.await
            }
        }
    }
}

/// Every agency's `(agency, stored, closed)` in `held`.
fn all_counts(held: &Held) -> Vec<(u32, u32, bool)> {
    held.stored
        .iter()
        .zip(&held.closed)
        .enumerate()
        .map(|(index, (&stored, &closed))| (index as u32 + 1, stored, closed))
        .collect()
}

/// What a stalled commit waits for, as the server reports it.
async fn stall_cause(reader: &Client, pids: &[i32]) -> String {
    let probe = async {
        let waits = pg_schema::waits_of(reader, pids).await?;
        let standbys = if waits.iter().any(|(_, event)| event == "SyncRep") {
            Some(pg_schema::sync_standbys(reader).await?)
        } else {
            None
        };
        Ok::<_, tokio_postgres::Error>((waits, standbys))
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok((waits, standbys))) => describe_waits(&waits, standbys.as_ref()),
        Ok(Err(e)) => format!(
            "the database did not answer a probe ({}): the server or the network may be down",
            describe(&e)
        ),
        Err(_) => {
            "the database did not answer a probe either: the server or the network may be down"
                .into()
        }
    }
}

/// The stall's likely cause from the commits' wait events and, when they
/// wait for replication, the synchronous standbys' setting and how many
/// stream. Pure.
pub fn describe_waits(waits: &[(String, String)], standbys: Option<&(String, i64)>) -> String {
    if let Some((names, streaming)) = standbys {
        return format!(
            "synchronous replication: the commit waits for a synchronous standby \
             (wait_event SyncRep; synchronous_standby_names = '{names}', {streaming} streaming as \
             synchronous); bring a standby back, or let the primary go on alone with \
             ALTER SYSTEM SET synchronous_standby_names = '' and SELECT pg_reload_conf()"
        );
    }
    if waits.is_empty() {
        return "the server reports no wait: the connection may be lost, or the server busy".into();
    }
    let events: Vec<String> = waits.iter().map(|(t, e)| format!("{t}/{e}")).collect();
    format!(
        "the server reports the commit waiting on {}",
        events.join(", ")
    )
}

/// The first agency whose bets or close the database no longer holds,
/// described; `None` if it holds all it is known to. Pure.
pub fn set_back(known: &Held, held: &Held) -> Option<String> {
    for (index, (&k, &h)) in known.stored.iter().zip(&held.stored).enumerate() {
        if h < k {
            return Some(format!(
                "agency {} has {h} bets where {k} were stored",
                index + 1
            ));
        }
    }
    for (index, (&k, &h)) in known.closed.iter().zip(&held.closed).enumerate() {
        if k && !h {
            return Some(format!("agency {} is no longer closed", index + 1));
        }
    }
    None
}

/// When to try the database again after a failure: 100 ms, doubling up to
/// 1 s, back to nothing once a commit goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    delay: Duration,
    next_try: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            delay: BACKOFF_FIRST,
            next_try: None,
        }
    }
}

impl Backoff {
    /// Whether a try may be made at `now`; if not, how long to wait.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.next_try
            .filter(|&at| at > now)
            .map(|at| at.duration_since(now))
    }

    /// A try failed at `now`: the next one waits longer.
    pub fn failed(&mut self, now: Instant) {
        self.next_try = Some(now + self.delay);
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }

    pub fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(stored: &[u32], closed: &[bool]) -> Held {
        Held {
            stored: stored.to_vec(),
            closed: closed.to_vec(),
            next_seq: 0,
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_one_second_and_resets_on_success() {
        let mut b = Backoff::default();
        let t = Instant::now();
        assert_eq!(b.wait(t), None);
        b.failed(t);
        assert_eq!(b.wait(t), Some(Duration::from_millis(100)));
        b.failed(t);
        assert_eq!(b.wait(t), Some(Duration::from_millis(200)));
        for _ in 0..10 {
            b.failed(t);
        }
        assert_eq!(b.wait(t), Some(Duration::from_secs(1)));
        assert_eq!(b.wait(t + Duration::from_secs(1)), None);
        b.succeeded();
        assert_eq!(b.wait(t), None);
    }

    #[test]
    fn a_database_holding_fewer_bets_or_closes_than_known_is_set_back() {
        let known = held(&[10, 5], &[false, true]);
        assert_eq!(set_back(&known, &known), None);
        // More is a commit kept though reported failed: not a set-back.
        assert_eq!(set_back(&known, &held(&[12, 5], &[true, true])), None);
        assert_eq!(
            set_back(&known, &held(&[10, 4], &[false, true])).as_deref(),
            Some("agency 2 has 4 bets where 5 were stored")
        );
        assert_eq!(
            set_back(&known, &held(&[10, 5], &[false, false])).as_deref(),
            Some("agency 2 is no longer closed")
        );
    }

    #[test]
    fn a_commit_waiting_for_replication_names_the_standbys_setting() {
        let waits = [("IPC".to_string(), "SyncRep".to_string())];
        let standbys = ("standby1".to_string(), 0);
        let text = describe_waits(&waits, Some(&standbys));
        assert!(text.starts_with("synchronous replication"), "{text}");
        assert!(text.contains("'standby1', 0 streaming"), "{text}");
        assert!(
            describe_waits(&[("Lock".into(), "transactionid".into())], None)
                .contains("Lock/transactionid")
        );
    }
}
