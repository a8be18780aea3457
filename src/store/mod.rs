//! Floor 3: where the bets are kept, behind one seam.
//!
//! - [`seam`]: the [`Store`](seam::Store) interface the central talks to
//!   (stage, commit the group, what is durable, recover), and its contract.
//! - [`csv`]: the embedded default, the course's `bets.csv` and a journal of
//!   DONEs: group commit with `fdatasync`, recovery of a torn tail.
//! - [`postgres`]: the bets in PostgreSQL (`STORAGE=postgres://...`): one
//!   transaction per group commit (binary `COPY` and the closes), recovery
//!   from the database, `lottery-export` back to `bets.csv`.
//! - [`pg_sessions`]: a PostgreSQL group split into two transactions on two
//!   connections, committed at once (two backends load it in parallel).
//! - [`open`]: which backend the settings name, opened and recovered.
//! - [`spreadsheet`]: exported rows made safe to open in a spreadsheet
//!   (`lottery-export --spreadsheet-safe`).

pub mod csv;
pub mod open;
pub mod pg_sessions;
pub mod postgres;
pub mod seam;
pub mod spreadsheet;
