//! Floor 3: where the bets are kept, behind one seam.
//!
//! - [`seam`]: the [`Store`](seam::Store) interface the central talks to
//!   (stage, commit the group, what is durable, recover), and its contract.
//! - [`csv`]: the embedded default, the course's `bets.csv` and a journal of
//!   DONEs: group commit with `fdatasync`, recovery of a torn tail.
//! - [`open`]: which backend the settings name, opened and recovered.

pub mod csv;
pub mod open;
pub mod seam;
