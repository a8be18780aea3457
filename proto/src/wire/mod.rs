//! The wire: `docs/protocol.md` v1, byte for byte, pure (no I/O).
//!
//! - [`codes`]: frame sizes, type bytes, `ERROR` codes.
//! - [`frame`]: bytes to borrowed frames (the decoder's `Ok(None)` /
//!   `Err` / `Ok(Some)` contract).
//! - [`encode`]: frames to bytes, one whole frame appended per call.
//! - [`reply`]: the central's reply frames as owned values, for the
//!   agencies and the bench.
//!
//! The protocol's names are re-exported here, so a caller says
//! `wire::decode` and `wire::encode_ack` without knowing the files.

pub mod codes;
pub mod encode;
pub mod frame;
pub mod reply;

pub use codes::*;
pub use encode::*;
pub use frame::*;
