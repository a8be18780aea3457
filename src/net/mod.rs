//! Floor 3: the network under the lottery, knowing nothing of bets.
//!
//! - [`tls`], [`certs`]: mutual TLS configurations, which agency a verified
//!   certificate names, and making the certificates (`lottery-certs`): from
//!   `lottery_proto`, shared with the agency.
//! - [`transport`]: plain TCP or mutual TLS under one connection, with the
//!   same read/write/flush semantics; the rate-limited log of lost connections.
//! - [`accept`]: the listening socket: bind, accept up to the cap, refuse
//!   when descriptors run out.

pub use lottery_proto::{certs, tls};

pub mod accept;
pub mod transport;
