//! Floor 4: the central's lottery without sockets: its state and the
//! answers to requests, unit-tested without a network.
//!
//! - [`lottery`]: stored counts, closed agencies, winners, the draw (pure state).
//! - [`answers`]: each closed agency's WINNERS frames, encoded once when it
//!   closes, for the draw to hand out ready-made (pure).
//! - [`state`]: the lottery, the store (behind [`crate::store::seam::Store`]),
//!   today's date and the commit group: the central's state apart from its sockets.
//! - [`requests`]: what BATCH, DONE and GET_WINNERS are answered (the
//!   connection's agency binding first), as functions without sockets.
//! - [`replies`]: a connection's replies held until the group commit, turned
//!   into `ERROR STORAGE` if it fails (pure).

pub mod answers;
pub mod lottery;
pub mod replies;
pub mod requests;
pub mod state;
