//! Floor 2: what a bet is, apart from how it travels; and its row in the
//! course's `bets.csv`.
//!
//! - [`bet`]: what a valid bet is (UTF-8 names without control characters,
//!   a digits-only document, a real birthdate not after today, a number
//!   0..=9999), shared by the central and the agencies (pure).
//! - [`agency_file`]: an agency's CSV (`nombre,apellido,documento,nacimiento,numero`),
//!   read and written, for the agency and the bench.

//! - [`row`]: a bet's row of `bets.csv`, byte for byte as the central's CSV
//!   store writes it (shared with the bench).

pub mod agency_file;
pub mod bet;
pub mod row;
