//! Floor 3: the network under the lottery, knowing nothing of bets.
//!
//! - [`tls`]: mutual TLS: the central's and an agency's rustls
//!   configurations, and which agency a verified certificate names (no sockets).
//! - [`certs`]: making the CA, the central's and the agencies' certificates
//!   (`lottery-certs`, and the odd ones tests need).
//! - [`transport`]: plain TCP or mutual TLS under one connection, with the
//!   same read/write/flush semantics; the rate-limited log of lost connections.
//! - [`accept`]: the listening socket: bind, accept up to the cap, refuse
//!   when descriptors run out.

pub mod accept;
pub mod certs;
pub mod tls;
pub mod transport;
