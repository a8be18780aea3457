//! Floor 0: pieces with no lottery in them, that any floor may use.
//!
//! - [`settings`], [`limits`], [`loopback`]: the agency's too, from
//!   `lottery_proto::support`.
//! - [`ini`]: a one-section INI file read line by line, errors at `FILE:LINE` (pure).
//! - [`log_field`]: a value percent-encoded for a log line's `key: value` (pure).
//! - [`log_budget`]: at most N lines a second of a kind, the rest counted (pure).
//! - [`deadlines`]: deadlines ordered by time, with lazy deletion (pure).

pub use lottery_proto::support::{limits, loopback, settings};

pub mod deadlines;
pub mod ini;
pub mod log_budget;
pub mod log_field;
