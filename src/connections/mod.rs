//! Floor 5: the connections the loop owns, one slab of them.
//!
//! - [`connection`]: one agency's connection: its transport, its bounded
//!   read and write buffers, its stage, the agency it is bound to (the only
//!   code touching socket bytes).
//! - [`schedule`]: which connections the loop drives next, which it writes
//!   this iteration, and their deadlines.
//! - [`parking`]: the parked GET_WINNERS, at most a few per agency; one park
//!   and one unpark for every way out.
//! - [`commit`]: the group commit settled across the connections: held
//!   replies released or refused, parked requests woken by the draw.

pub mod commit;
pub mod connection;
pub mod parking;
pub mod schedule;
