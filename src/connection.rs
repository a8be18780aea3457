//! One agency's connection: the only code that touches socket bytes.
//!
//! A connection owns its socket, a bounded input buffer (at most
//! [`INPUT_CAPACITY`] bytes: two whole frames), the replies staged during the
//! current loop iteration, and the output not yet taken by the socket. The
//! loop stops decoding a connection's requests while [`OUTPUT_HIGH_WATER`]
//! bytes wait to go out, so a peer that does not read cannot make the central
//! hold more than a couple of frames for it.
//!
//! Its [`Stage`] says what it is doing; only the server changes it, and only
//! the server closes a connection (deregister, then remove).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::wire::{self, ErrorCode, MAX_FRAME};

/// The most request bytes buffered for one connection.
pub const INPUT_CAPACITY: usize = 2 * MAX_FRAME;
/// While this many reply bytes wait to go out, no more requests are decoded.
pub const OUTPUT_HIGH_WATER: usize = 2 * MAX_FRAME;
/// Lines about its requests (refusals, winners answers) logged per
/// connection; past this they are only counted, and the count is logged
/// when the connection closes, so that a peer repeating a request cannot
/// grow the log without bound. An honest agency needs a handful.
pub const REQUEST_LINES_LOGGED: u32 = 20;
/// Buffers larger than this are released when they empty, so that ten
/// thousand parked agencies cost little memory.
const KEEP_CAPACITY: usize = 4096;

/// What a connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Decoding and answering requests in order.
    Receiving,
    /// A GET_WINNERS waits for the draw; requests behind it stay buffered,
    /// undecoded, until it is unparked. `wait` is false only for a wait=0
    /// request pipelined behind the DONE that makes the draw pending: it is
    /// decided right after this iteration's commit.
    Parked {
        agency: u32,
        since: Instant,
        wait: bool,
    },
    /// Sending an agency's winners, a frame at a time as the socket takes them.
    Answering { agency: u32, next: usize },
    /// An error that ends the connection was queued: send what is owed, then close.
    Closing,
}

/// Replies produced during one loop iteration, held until the group commit.
///
/// A reply that depends on bets or closes staged in this iteration (an ACK,
/// or an error whose detail is a stored count) is *durable*: if the commit
/// fails it is replaced by `ERROR STORAGE`, so nothing is acknowledged that is
/// not on disk.
#[derive(Debug, Default)]
pub struct Replies {
    bytes: Vec<u8>,
    durable: Vec<(usize, usize)>,
}

impl Replies {
    /// Appends one reply written by `encode`.
    pub fn push(&mut self, durable: bool, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        encode(&mut self.bytes);
        if durable {
            self.durable.push((start, self.bytes.len()));
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Moves the replies to `out`: as they are if the commit succeeded, with
    /// every durable reply turned into `ERROR STORAGE` if it failed.
    pub fn settle(&mut self, committed: bool, out: &mut Vec<u8>) {
        if committed || self.durable.is_empty() {
            out.extend_from_slice(&self.bytes);
        } else {
            let mut at = 0;
            for &(start, end) in &self.durable {
                out.extend_from_slice(&self.bytes[at..start]);
                wire::encode_error(
                    out,
                    ErrorCode::Storage,
                    0,
                    "the bets could not be stored; nothing was acknowledged, send them again",
                );
                at = end;
            }
            out.extend_from_slice(&self.bytes[at..]);
        }
        self.bytes.clear();
        self.durable.clear();
    }
}

/// What a read did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes were appended; the socket may hold more.
    Data,
    /// The socket has nothing more for now.
    Drained,
    /// The input buffer is full; read again once frames are consumed.
    Full,
    /// The peer closed its side.
    Closed,
}

#[derive(Debug)]
pub struct Connection {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    pub stage: Stage,
    /// Received bytes not yet decoded (a partial frame, or frames behind a parked request).
    pub input: Vec<u8>,
    pub replies: Replies,
    out: Vec<u8>,
    out_sent: usize,
    /// The socket may hold bytes we have not read (we stopped at a full buffer
    /// or at the loop's budget, not at `WouldBlock`).
    pub may_read: bool,
    pub peer_closed: bool,
    /// Decoding stopped because too much output waited; resume after a write.
    pub output_blocked: bool,
    pub writable_registered: bool,
    /// Queued in the loop's ready list.
    pub queued: bool,
    /// Listed among the connections touched this iteration.
    pub touched: bool,
    /// The last time this connection completed a frame or took reply bytes.
    pub last_progress: Instant,
    request_lines_logged: u32,
    /// Request lines past [`REQUEST_LINES_LOGGED`], counted and not logged.
    pub request_lines_unlogged: u64,
}

impl Connection {
    pub fn new(socket: TcpStream, peer: SocketAddr, now: Instant) -> Connection {
        Connection {
            socket,
            peer,
            stage: Stage::Receiving,
            input: Vec::new(),
            replies: Replies::default(),
            out: Vec::new(),
            out_sent: 0,
            may_read: true,
            peer_closed: false,
            output_blocked: false,
            writable_registered: false,
            queued: false,
            touched: false,
            last_progress: now,
            request_lines_logged: 0,
            request_lines_unlogged: 0,
        }
    }

    /// Counts a line about one of this connection's requests; whether it
    /// should still be logged.
    pub fn log_request_line(&mut self) -> bool {
        if self.request_lines_logged < REQUEST_LINES_LOGGED {
            self.request_lines_logged += 1;
            true
        } else {
            self.request_lines_unlogged += 1;
            false
        }
    }

    /// Reply bytes staged or waiting for the socket.
    pub fn pending_output(&self) -> usize {
        self.replies.len() + self.out.len() - self.out_sent
    }

    /// Reads once into `scratch` and appends to the input buffer.
    pub fn read(&mut self, scratch: &mut [u8]) -> io::Result<ReadOutcome> {
        let room = INPUT_CAPACITY - self.input.len();
        if room == 0 {
            return Ok(ReadOutcome::Full);
        }
        loop {
            match self.socket.read(&mut scratch[..room]) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.may_read = false;
                    return Ok(ReadOutcome::Closed);
                }
                Ok(n) => {
                    self.input.extend_from_slice(&scratch[..n]);
                    return Ok(ReadOutcome::Data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.may_read = false;
                    return Ok(ReadOutcome::Drained);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the first `n` input bytes (whole frames that were handled).
    pub fn consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.input.drain(..n);
        if self.input.is_empty() && self.input.capacity() > KEEP_CAPACITY {
            self.input = Vec::new();
        }
    }

    /// Moves this iteration's replies to the output, after the group commit.
    pub fn settle(&mut self, committed: bool) {
        self.replies.settle(committed, &mut self.out);
    }

    /// Writes as much output as the socket takes. `Ok(true)` when all of it went.
    pub fn write(&mut self, now: Instant) -> io::Result<bool> {
        while self.out_sent < self.out.len() {
            match self.socket.write(&self.out[self.out_sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_sent += n;
                    self.last_progress = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_sent = 0;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        Ok(true)
    }

    /// Whether output is waiting for the socket.
    pub fn has_unsent(&self) -> bool {
        self.out_sent < self.out.len()
    }

    /// Releases buffer memory while the connection waits (parked).
    pub fn shrink(&mut self) {
        self.input.shrink_to_fit();
    }
}

/// Whether a peer error means "the peer went away" rather than a fault worth a warning.
pub fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::WriteZero
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Frame;

    #[test]
    fn committed_replies_go_out_unchanged_and_in_order() {
        let mut r = Replies::default();
        r.push(true, |o| wire::encode_ack(o, 1, 10));
        r.push(false, |o| wire::encode_not_ready(o, 0, 5));
        let mut out = Vec::new();
        r.settle(true, &mut out);
        let mut expected = Vec::new();
        wire::encode_ack(&mut expected, 1, 10);
        wire::encode_not_ready(&mut expected, 0, 5);
        assert_eq!(out, expected);
        assert!(r.is_empty());
    }

    #[test]
    fn a_failed_commit_turns_durable_replies_into_storage_errors() {
        let mut r = Replies::default();
        r.push(true, |o| wire::encode_ack(o, 1, 10));
        r.push(false, |o| wire::encode_not_ready(o, 0, 5));
        r.push(true, |o| wire::encode_ack(o, 1, 20));
        let mut out = Vec::new();
        r.settle(false, &mut out);
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while let Some((f, n)) = wire::decode(rest).unwrap() {
            frames.push(f.kind());
            if let Frame::Error { code, .. } = f {
                assert_eq!(code, ErrorCode::Storage as u8);
            }
            rest = &rest[n..];
        }
        assert_eq!(
            frames,
            [wire::kind::ERROR, wire::kind::NOT_READY, wire::kind::ERROR]
        );
    }
}
