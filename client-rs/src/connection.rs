//! One TCP connection to the central: the only code that touches socket
//! bytes.
//!
//! Writes go out whole (a short write is continued, never an error); reads
//! go into a buffer that is decoded with `wire::decode`, so a frame that
//! arrives in pieces is waited for and several frames in one read are all
//! kept. The buffer never holds more than one incomplete frame plus one
//! read, because it is only read into when no whole frame is buffered.
//!
//! Every socket wait lasts at most [`POLL`], then the stop flag is looked
//! at: a parked `GET_WINNERS` may wait minutes, and SIGTERM must still be
//! answered at once. A closed, reset or broken connection is
//! [`ConnError::Lost`] (the agency reconnects); bytes that are not the
//! protocol are [`ConnError::Garbled`] (the agency gives up).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

use lottery::wire::{self, ErrorCode, Frame};

use crate::stop::Stop;

/// The longest a socket call blocks before the stop flag is checked.
pub const POLL: Duration = Duration::from_millis(100);
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// A frame the central sends, owned so it outlives the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ack {
        agency: u32,
        stored: u32,
    },
    Winners {
        agency: u32,
        total: u32,
        last: bool,
        documents: Vec<String>,
    },
    NotReady {
        done: u32,
        expected: u32,
    },
    Error {
        /// `None` for a code this agency does not know.
        code: Option<ErrorCode>,
        raw_code: u8,
        detail: u32,
        message: String,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConnError {
    /// The connection is gone (closed, reset, broken pipe): reconnect.
    Lost(String),
    /// The central sent bytes that are not a frame it may send.
    Garbled(String),
    /// A stop signal arrived while waiting.
    Stopped,
}

pub struct Connection<'a> {
    stream: TcpStream,
    /// Bytes read but not yet decoded into a [`Reply`].
    inbox: Vec<u8>,
    stop: &'a Stop,
}

impl<'a> Connection<'a> {
    /// Connects to `address` (`host:port`, resolved now), trying each of
    /// its addresses for at most `timeout`.
    pub fn open(address: &str, timeout: Duration, stop: &'a Stop) -> io::Result<Connection<'a>> {
        let mut last_error = None;
        for addr in address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    // Frames are written whole; Nagle would only delay a
                    // lone DONE or GET_WINNERS behind an unacknowledged ACK.
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(POLL))?;
                    stream.set_write_timeout(Some(POLL))?;
                    return Ok(Connection {
                        stream,
                        inbox: Vec::with_capacity(READ_CHUNK),
                        stop,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the address resolved to nothing")
        }))
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, mut bytes: &[u8]) -> Result<(), ConnError> {
        while !bytes.is_empty() {
            if self.stop.requested().is_some() {
                return Err(ConnError::Stopped);
            }
            match self.stream.write(bytes) {
                Ok(0) => return Err(ConnError::Lost("the central stopped reading".into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if is_wait(&e) => {}
                Err(e) => return Err(ConnError::Lost(e.to_string())),
            }
        }
        Ok(())
    }

    /// The next frame from the central, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<Reply, ConnError> {
        loop {
            match wire::decode(&self.inbox) {
                Ok(Some((frame, used))) => {
                    let reply = to_reply(frame);
                    self.inbox.drain(..used);
                    return reply;
                }
                Ok(None) => {}
                Err(e) => return Err(ConnError::Garbled(e.to_string())),
            }
            self.fill()?;
        }
    }

    /// Reads once into the inbox (after waits of at most [`POLL`]).
    fn fill(&mut self) -> Result<(), ConnError> {
        let old = self.inbox.len();
        self.inbox.resize(old + READ_CHUNK, 0);
        let result = loop {
            if self.stop.requested().is_some() {
                break Err(ConnError::Stopped);
            }
            match self.stream.read(&mut self.inbox[old..]) {
                Ok(0) => {
                    let why = if old == 0 {
                        "closed by the central"
                    } else {
                        "closed by the central in the middle of a frame"
                    };
                    break Err(ConnError::Lost(why.into()));
                }
                Ok(n) => break Ok(old + n),
                Err(e) if is_wait(&e) => {}
                Err(e) => break Err(ConnError::Lost(e.to_string())),
            }
        };
        self.inbox.truncate(*result.as_ref().unwrap_or(&old));
        result.map(|_| ())
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        // Tell the central at once rather than when the process exits.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// A timeout of [`POLL`] or a signal: look at the stop flag and go on.
fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn to_reply(frame: Frame<'_>) -> Result<Reply, ConnError> {
    Ok(match frame {
        Frame::Ack { agency, stored } => Reply::Ack { agency, stored },
        Frame::Winners {
            agency,
            total,
            last,
            documents,
        } => Reply::Winners {
            agency,
            total,
            last,
            documents: documents.iter().map(str::to_owned).collect(),
        },
        Frame::NotReady { done, expected } => Reply::NotReady { done, expected },
        Frame::Error {
            code,
            detail,
            message,
        } => Reply::Error {
            code: ErrorCode::from_u8(code),
            raw_code: code,
            detail,
            message: message.to_owned(),
        },
        Frame::Batch { .. } | Frame::Done { .. } | Frame::GetWinners { .. } => {
            return Err(ConnError::Garbled(format!(
                "the central sent a request frame (type 0x{:02x})",
                frame.kind()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn pair(stop: &Stop) -> (Connection<'_>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let conn = Connection::open(&address, Duration::from_secs(1), stop).unwrap();
        let (central, _) = listener.accept().unwrap();
        (conn, central)
    }

    #[test]
    fn frames_split_across_writes_and_packed_in_one_are_all_read() {
        let stop = Stop::default();
        let (mut conn, mut central) = pair(&stop);
        let mut bytes = Vec::new();
        wire::encode_ack(&mut bytes, 1, 10);
        wire::encode_not_ready(&mut bytes, 2, 5);
        wire::encode_winners(&mut bytes, 1, 1, true, &["30904465"]);
        let writer = thread::spawn(move || {
            for piece in bytes.chunks(5) {
                central.write_all(piece).unwrap();
                thread::sleep(Duration::from_millis(5));
            }
            central
        });
        assert_eq!(
            conn.recv(),
            Ok(Reply::Ack {
                agency: 1,
                stored: 10
            })
        );
        assert_eq!(
            conn.recv(),
            Ok(Reply::NotReady {
                done: 2,
                expected: 5
            })
        );
        assert_eq!(
            conn.recv(),
            Ok(Reply::Winners {
                agency: 1,
                total: 1,
                last: true,
                documents: vec!["30904465".into()]
            })
        );
        drop(writer.join().unwrap());
        assert!(matches!(conn.recv(), Err(ConnError::Lost(_))));
    }

    #[test]
    fn bytes_that_are_not_the_protocol_are_garbled() {
        let stop = Stop::default();
        let (mut conn, mut central) = pair(&stop);
        central.write_all(&[0, 1, 0x7f]).unwrap();
        assert!(matches!(conn.recv(), Err(ConnError::Garbled(_))));
    }

    #[test]
    fn a_stop_request_ends_a_wait_for_a_reply() {
        let stop = Stop::default();
        let (mut conn, _central) = pair(&stop);
        let flag = stop.clone();
        let stopper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            flag.request();
        });
        assert_eq!(conn.recv(), Err(ConnError::Stopped));
        stopper.join().unwrap();
    }
}
