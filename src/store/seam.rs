//! The one interface between the central and where its bets are kept.
//!
//! The central talks to its store only through [`Store`] and [`Recovery`]:
//! it *stages* a loop iteration's bets and closes, *commits* the group once
//! (the ACKs wait for that), learns from [`CommitStats`] what became
//! durable, and at start-up *recovers* what a previous run left, winners
//! included. A backend is a module of this folder that implements [`Store`]
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
pub struct CommitError(pub Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<std::io::Error> for CommitError {
    fn from(e: std::io::Error) -> CommitError {
        CommitError(Box::new(e))
    }
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

    /// Makes everything staged durable at once, or nothing of it.
    fn commit(&mut self) -> Result<CommitStats, CommitError>;

    /// The winners of every agency (index 0 is agency 1), in stored order,
    /// read back from the store after the commit that ran the draw, for a
    /// backend that can answer with one query (PostgreSQL): the draw then
    /// announces what the store holds, not what this run counted. `None`
    /// (the default, the CSV store) when the central's own count is the
    /// answer.
    fn drawn_winners(&mut self) -> Option<Result<Vec<Vec<Box<str>>>, CommitError>> {
        None
    }

    /// Where the bets are kept, as the `key: value` the log lines show
    /// (`archivo: ./bets.csv`).
    fn location(&self) -> String;

    /// Makes everything durable and lets the store go (shutdown).
    fn close(self: Box<Self>) -> std::io::Result<()>;
}
