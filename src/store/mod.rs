//! Floor 3: where the bets are kept, behind one seam.
//!
//! - [`seam`]: the [`Store`](seam::Store) interface the central talks to
//!   (stage, commit the group, what is durable, recover), and its contract.
//! - [`csv`]: the embedded default, the course's `bets.csv` and a journal of
//!   DONEs: group commit with `fdatasync`, recovery of a torn tail.
//! - [`postgres`]: the bets in PostgreSQL (`STORAGE=postgres://...`): the
//!   loop's side (the staged group), the connection settings,
//!   `lottery-export` back to `bets.csv`.
//! - [`pg_worker`]: the PostgreSQL store's thread, which does all the
//!   talking to the database, so the loop never waits for it.
//! - [`pg_sessions`]: a PostgreSQL group split into two transactions on two
//!   connections, committed at once (two backends load it in parallel).
//! - [`pg_schema`]: the PostgreSQL tables, made and checked, and the reads
//!   of what they hold.
//! - [`open`]: which backend the settings name, opened and recovered.
//! - [`spreadsheet`]: exported rows made safe to open in a spreadsheet
//!   (`lottery-export --spreadsheet-safe`).

pub mod csv;
pub mod open;
pub mod pg_schema;
pub mod pg_sessions;
pub mod pg_worker;
pub mod postgres;
pub mod seam;
pub mod spreadsheet;
