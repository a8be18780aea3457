//! Synthetic agencies for the lottery, and the bench that plays them.
//!
//! # Layout
//!
//! - [`synth`]: seeded synthetic bets with a known number of winners per agency (pure).
//! - [`agency_file`]: agency CSV files in the course's format, written and read.

pub mod agency_file;
pub mod synth;
