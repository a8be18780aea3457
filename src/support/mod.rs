//! Floor 0: pieces with no lottery in them, that any floor may use.
//!
//! - [`settings`]: a setting layered from a file and the environment, with its source.
//! - [`ini`]: a one-section INI file read line by line, errors at `FILE:LINE` (pure).
//! - [`log_field`]: a value percent-encoded for a log line's `key: value` (pure).
//! - [`limits`]: the process's limit on open files.
//! - [`loopback`]: a free loopback port, for tests and the bench.
//! - [`log_budget`]: at most N lines a second of a kind, the rest counted (pure).
//! - [`deadlines`]: deadlines ordered by time, with lazy deletion (pure).

pub mod deadlines;
pub mod ini;
pub mod limits;
pub mod log_budget;
pub mod log_field;
pub mod loopback;
pub mod settings;
