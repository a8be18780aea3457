//! What the central and its agencies share: the wire, the rules of a bet,
//! and the TLS identity of each side. The agency and the bench depend on
//! this crate, not on the central, so building an agency compiles no
//! database client.
//!
//! # Layout
//!
//! The folders are floors, as in the central (`tests/architecture.rs`
//! checks both crates):
//!
//! 0. [`support`]: settings layered from a file and the environment, the
//!    open-files limit, a loopback port.
//! 1. [`wire`]: `docs/protocol.md` byte for byte: codes, decoder, encoders,
//!    owned replies (pure).
//! 2. [`bets`]: what a valid bet is, an agency's CSV file, a row of
//!    `bets.csv` (pure).
//! 3. [`tls`]: mutual TLS configurations and which agency a certificate
//!    names; [`certs`] (feature `certs`): making the certificates.

pub mod bets;
#[cfg(any(test, feature = "certs"))]
pub mod certs;
pub mod support;
pub mod tls;
pub mod wire;
