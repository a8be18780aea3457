//! Floor 0: pieces with no lottery in them, that any floor may use.
//!
//! - [`settings`]: a setting layered from a file and the environment, with its source.
//! - [`limits`]: the process's limit on open files.
//! - [`loopback`]: a free loopback port, for tests and the bench.

pub mod limits;
pub mod loopback;
pub mod settings;
