//! The one interface between the central and where its bets are kept.
//!
//! The central talks to its store only through [`Store`] and [`Recovery`]:
//! it *stages* a loop iteration's bets and closes, *commits* the group once
//! (the ACKs wait for that), learns from [`CommitStats`] what became
//! durable, and at start-up *recovers* what a previous run left, winners
//! included.
//!
//! A commit is started and later finished: a backend whose commit is a
//! local `fdatasync` (CSV) finishes it at once, in [`Store::start_commit`];
//! one whose commit crosses a network (PostgreSQL) hands the group to a
//! thread of its own and answers [`Started::Pending`], and the loop, which
//! goes on serving the other connections meanwhile, takes the outcome with
//! [`Store::finish_commit`] once the store's [`mio::Waker`] fires. One
//! commit is outstanding at a time, and nothing is staged while it is. A backend is a module of this folder that implements [`Store`]
//! and is named by a setting in [`super::open`]; nothing above this floor
//! knows which one runs.
//!
//! The contract every backend keeps:
//! - nothing staged is durable, or visible to a recovery, before
//!   [`Store::commit`] returns `Ok`; on `Err` nothing of the group is kept,
//!   so the agencies' retries store it once;
//! - a close is never durable without the bets it counts (the DONE of an
//!   agency commits with, or after, its last bets);
//! - a recovery reports, for every agency, exactly the committed bets (in
//!   their positions `0..stored`), whether it is closed, and its winners in
//!   stored order.

use std::fmt;

use crate::bets::bet::InvalidBet;
use crate::wire::{Bets, Date};

/// The per-agency state a restarted central recovers from its store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveredAgency {
    pub stored: u32,
    pub closed: bool,
    /// Documents of the winning bets, in stored order.
    pub winners: Vec<Box<str>>,
}

/// What a previous run left in the store.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Index 0 is agency 1.
    pub agencies: Vec<RecoveredAgency>,
}

/// What one commit made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub bets: u64,
    pub closes: u64,
}

/// Why a commit did not reach the store: the group is not durable, and its
/// ACKs become `ERROR STORAGE`.
#[derive(Debug)]
pub struct CommitError {
    pub source: Box<dyn std::error::Error + Send + Sync>,
    /// The store can no longer keep what was acknowledged (a database found
    /// holding fewer bets or closes than were acknowledged): the central
    /// must stop, acknowledging nothing more.
    pub fatal: bool,
}

impl CommitError {
    /// A commit that failed: the agencies' retries may store the group.
    pub fn failed(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CommitError {
        CommitError {
            source: source.into(),
            fatal: false,
        }
    }

    /// A store that lost acknowledged bets: nothing more may be acknowledged.
    pub fn fatal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CommitError {
        CommitError {
            source: source.into(),
            fatal: true,
        }
    }
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for CommitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl From<std::io::Error> for CommitError {
    fn from(e: std::io::Error) -> CommitError {
        CommitError::failed(e)
    }
}

/// What became of a commit once it is over.
#[derive(Debug)]
pub struct Finished {
    pub result: Result<CommitStats, CommitError>,
    /// For a store that records the draw itself (PostgreSQL, shared by
    /// several centrals), the draw as the store holds it once this commit
    /// found it recorded: every agency's count, close and winners (index 0
    /// is agency 1). `None` when the central's own count is the answer (the
    /// CSV store), or when the store holds no draw yet.
    pub drawn: Option<Result<Vec<RecoveredAgency>, CommitError>>,
}

/// What a store shared by several centrals learned of the lottery that
/// this central did not do itself.
#[derive(Debug, PartialEq, Eq)]
pub enum News {
    /// Agencies as the store holds them now: `(agency, stored, closed)`,
    /// the answer to [`Store::read_counts`].
    Counts(Vec<(u32, u32, bool)>),
    /// The same, read by the store on its own (after a reconnect).
    Held(Vec<(u32, u32, bool)>),
    /// The draw, recorded in the store by some central: every agency's
    /// count, close and winners (index 0 is agency 1).
    Drawn(Vec<RecoveredAgency>),
}

/// How starting a commit went.
#[derive(Debug)]
pub enum Started {
    /// The commit is over (a backend that commits on the calling thread).
    Done(Finished),
    /// The commit is under way; its outcome comes from
    /// [`Store::finish_commit`] once the store's waker fired.
    Pending,
}

/// A batch's bets as the central hands them to its store.
#[derive(Clone, Copy, Debug)]
pub struct BatchToStage<'b> {
    pub agency: u32,
    /// The agency's bet number of the batch's first bet: the bet at index
    /// `i` is the agency's bet `first + i`.
    pub first: u32,
    pub bets: Bets<'b>,
    /// The bets before this index are stored already (a retried batch).
    pub skip: usize,
    /// The latest birthdate a bet may hold.
    pub today: Date,
    /// The number that wins the draw.
    pub winning: u16,
}

/// Where the central's bets are kept: a group commit per loop iteration.
pub trait Store {
    /// Checks (with [`crate::bets::bet::check`]) and stages the bets of
    /// `batch` from index `skip` on, in one walk of each bet's bytes, and
    /// pushes to `winners` the documents of those that hold the winning
    /// number (the central's count of them needs no walk of its own). At the
    /// first invalid bet nothing of the batch stays staged or in `winners`,
    /// and the error names it. (The caller checked the bets before `skip`.)
    fn stage_bets<'b>(
        &mut self,
        batch: BatchToStage<'b>,
        winners: &mut Vec<&'b [u8]>,
    ) -> Result<(), InvalidBet>;

    /// Stages the durable record that `agency` is closed with `total` bets.
    fn stage_close(&mut self, agency: u32, total: u32);

    /// How many bets wait for the next commit.
    fn staged_bets(&self) -> u64;

    /// Whether anything (bets or closes) waits for the next commit.
    fn has_staged(&self) -> bool;

    /// Starts making everything staged durable at once, or nothing of it.
    /// `draws`: the commit runs the draw if it succeeds (it closes the last
    /// agency), so a backend that can read the winners back with one query
    /// does so with it (see [`Finished::drawn`]).
    fn start_commit(&mut self, draws: bool) -> Started;

    /// The outcome of the commit under way, once it is over; `None` while
    /// it is still under way (or none is).
    fn finish_commit(&mut self) -> Option<Finished> {
        None
    }

    /// Waits at most `timeout` for the commit under way (shutdown only: the
    /// loop never waits for its store).
    fn wait_commit(&mut self, _timeout: std::time::Duration) -> Option<Finished> {
        None
    }

    /// Whether other centrals may write the same store at the same time:
    /// then an agency's count is read from the store whenever a connection
    /// binds it ([`Store::read_counts`]), and the draw is the store's.
    fn shared(&self) -> bool {
        false
    }
    /// Starts reading what the store holds of `agencies`; the answer comes
    /// as [`News::Counts`] from [`Store::news`].
    fn read_counts(&mut self, _agencies: &[u32]) {}
    /// What the store learned since last asked, one piece at a time; only
    /// while no commit is under way, so that nothing is staged when the
    /// central applies it.
    fn news(&mut self) -> Option<News> {
        None
    }
    /// Registers the waker that fires when a commit under way is over.
    fn register(&mut self, _registry: &mio::Registry, _token: mio::Token) -> std::io::Result<()> {
        Ok(())
    }

    /// Where the bets are kept, as the `key: value` the log lines show
    /// (`archivo: ./bets.csv`).
    fn location(&self) -> String;

    /// Makes everything durable and lets the store go (shutdown).
    fn close(self: Box<Self>) -> std::io::Result<()>;
}
