//! A loopback port for a central started by a test or the bench.
//!
//! Here rather than in `tests/util` because the bench (`lottery-bench`, a
//! separate crate) starts centrals too and cannot reach test code; the
//! central itself never calls it, so the server binary carries none of it.

use std::io;
use std::net::TcpListener;

/// A loopback TCP port that was free a moment ago (the kernel's pick for
/// port 0). Another process may take it before it is used: fine for tests.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
