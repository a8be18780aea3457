//! Why the central could not start, one variant per floor that can refuse:
//! the store, the listening socket, the TLS files, the poller.

use std::fmt;
use std::io;

use crate::net::accept::ListenError;
use crate::net::tls::TlsError;
use crate::store::open::OpenError;

#[derive(Debug)]
pub enum StartError {
    Storage(OpenError),
    Listen(ListenError),
    /// The TLS files cannot be used (a configuration error: exit code 2).
    Tls(TlsError),
    Io(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Storage(e) => write!(f, "{e}"),
            StartError::Listen(e) => write!(f, "{e}"),
            StartError::Tls(e) => write!(f, "cannot serve TLS: {e}"),
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}
