//! One agency's connection: the only code that touches socket bytes
//! (through its [`Transport`]: the TCP socket, or TLS over it).
//!
//! A connection owns its transport, a bounded input buffer (at most
//! [`INPUT_CAPACITY`] bytes: two whole frames), the replies held during the
//! current loop iteration, and the output not yet taken by the socket.
//! Its requests are not decoded while [`OUTPUT_HIGH_WATER`] bytes wait to go
//! out ([`Connection::output_blocked`], derived from what is pending, so it
//! cannot go stale; held replies count at the size a failed commit may
//! turn them into), so a peer that does not read cannot make the central
//! hold more than a couple of frames for it, whichever way the commit goes.
//!
//! Its [`Stage`] says what it is doing and carries what that stage needs.
//! Only the loop changes it (through [`crate::connections::parking`] for parking), and
//! only the loop closes a connection (deregister, then remove).
//!
//! The agency it acts for, once bound, never changes: over TLS it is bound
//! at the handshake, from the verified certificate, before any of its
//! frames is read into the input buffer.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::{Interest, Registry, Token};

use crate::central::replies::Replies;
pub use crate::central::requests::OUTPUT_HIGH_WATER;
use crate::central::requests::{RequestLog, Requests};
use crate::central::state::CountsSeen;
use crate::net::transport::Transport;
use crate::wire::{self, MAX_FRAME};

/// The most request bytes buffered for one connection.
pub const INPUT_CAPACITY: usize = 2 * MAX_FRAME;
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
    /// decided right after this iteration's commit. `slot` is its place in
    /// the parked list.
    Parked {
        agency: u32,
        since: Instant,
        wait: bool,
        slot: usize,
    },
    /// Sending an agency's winners, a frame at a time as the socket takes
    /// them; `next` is where the rest starts in its answer's bytes.
    Answering { agency: u32, next: usize },
    /// An error that ends the connection was queued: send what is owed, then close.
    Closing,
}

/// What a read did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes were appended; the socket may hold more.
    Data,
    /// The socket has nothing more for now (this read may have appended
    /// the last bytes it had).
    Drained,
    /// The input buffer is full; read again once frames are consumed.
    Full,
    /// The peer closed its side.
    Closed,
}

#[derive(Debug)]
pub struct Connection {
    transport: Transport,
    peer: SocketAddr,
    /// Unique for the life of the central (slab keys are reused): what
    /// queue entries and deadlines name it by.
    id: u64,
    stage: Stage,
    /// The agency this connection acts for: set by its first request that
    /// names a known agency (or at a TLS handshake), never changed after.
    agency: Option<u32>,
    /// Whether its agency's counts were read from a shared store since it
    /// named the agency.
    counts: CountsSeen,
    /// Received bytes not yet decoded (a partial frame, or frames behind a parked request).
    input: Vec<u8>,
    replies: Replies,
    out: Vec<u8>,
    out_sent: usize,
    /// The socket may hold bytes we have not read (we stopped at a full buffer
    /// or at the loop's budget, not at `WouldBlock`).
    may_read: bool,
    peer_closed: bool,
    /// The poller reported the peer's side closed (or an error), maybe
    /// before the bytes in front of it are read: how a parked connection
    /// with a full input buffer learns of a hang-up.
    read_closed: bool,
    writable_registered: bool,
    /// The last time this connection completed a frame or took reply bytes
    /// once bound to an agency (its accept, until then).
    last_progress: Instant,
    /// Marks kept by [`crate::connections::schedule::Schedule`], its only writer.
    pub(crate) marks: Marks,
    log: RequestLog,
    /// Bytes read (after TLS) and written (before TLS) since the accept.
    traffic: Traffic,
}

/// Bytes a connection read and wrote, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub received: u64,
    pub sent: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        self.received += other.received;
        self.sent += other.sent;
    }
}

/// Where the loop has listed a connection; written only by the schedule.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// In the ready queue.
    pub queued: bool,
    /// In this iteration's touched list.
    pub touched: bool,
    /// Its held replies wait for a commit still under way.
    pub committing: bool,
    /// Its next request stages bets or a close, and waits for the commit
    /// under way to be over.
    pub deferred: bool,
    /// When its one idle deadline entry is due, if it has one.
    pub idle_timer: Option<Instant>,
}

impl Connection {
    pub fn new(transport: Transport, peer: SocketAddr, id: u64, now: Instant) -> Connection {
        Connection {
            transport,
            peer,
            id,
            stage: Stage::Receiving,
            agency: None,
            counts: CountsSeen::default(),
            input: Vec::new(),
            replies: Replies::default(),
            out: Vec::new(),
            out_sent: 0,
            may_read: true,
            peer_closed: false,
            read_closed: false,
            writable_registered: false,
            last_progress: now,
            marks: Marks::default(),
            log: RequestLog::default(),
            traffic: Traffic::default(),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Bytes read and written since the accept.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// The agency this connection acts for, once bound.
    pub fn agency(&self) -> Option<u32> {
        self.agency
    }

    /// Binds the connection to `agency` (at the TLS handshake, or at its
    /// first request naming a known agency).
    pub fn bind(&mut self, agency: u32) {
        self.agency = Some(agency);
    }

    /// A TLS connection whose handshake has not completed.
    pub fn is_handshaking(&self) -> bool {
        self.transport.is_handshaking()
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn set_stage(&mut self, stage: Stage) {
        self.stage = stage;
    }

    /// Its next request waits for the commit under way (see
    /// [`crate::connections::schedule::Schedule::defer`]).
    pub fn is_deferred(&self) -> bool {
        self.marks.deferred
    }

    pub fn is_parked(&self) -> bool {
        matches!(self.stage, Stage::Parked { .. })
    }

    /// A readiness event: the socket may hold bytes (or a hang-up) for us.
    pub fn mark_readable(&mut self) {
        self.may_read = true;
    }

    pub fn may_read(&self) -> bool {
        self.may_read
    }

    /// The poller saw the peer's side close, or an error on the socket.
    pub fn mark_read_closed(&mut self) {
        self.read_closed = true;
    }

    /// The peer closed its side: read to the end, or reported by the poller
    /// (then bytes may still be in the socket, behind a full buffer).
    pub fn peer_gone(&self) -> bool {
        self.peer_closed || self.read_closed
    }

    /// It completed a frame or the socket took reply bytes. Only a
    /// connection bound to an agency makes progress: one whose requests
    /// name no known agency acts for nobody, and its UNKNOWN_AGENCY
    /// answers must not keep it open (a crowd of them would hold every
    /// slot of the connection cap), so it is closed at the idle timeout
    /// counted from its accept, however often it asks.
    pub fn progress(&mut self, now: Instant) {
        if self.agency.is_some() {
            self.last_progress = now;
        }
    }

    /// When it is closed if it makes no progress.
    pub fn idle_deadline(&self, idle_timeout: Duration) -> Instant {
        self.last_progress + idle_timeout
    }

    pub fn replies(&mut self) -> &mut Replies {
        &mut self.replies
    }

    pub fn request_log(&mut self) -> &mut RequestLog {
        &mut self.log
    }

    /// Request lines that went uncounted past the connection's budget.
    pub fn request_lines_unlogged(&self) -> u64 {
        self.log.unlogged()
    }

    /// The undecoded input from byte `from` on, with what handling it needs.
    pub fn requests(&mut self, from: usize) -> Requests<'_> {
        Requests {
            input: &self.input[from..],
            replies: &mut self.replies,
            log: &mut self.log,
            peer: self.peer,
            unsent: self.out.len() - self.out_sent,
            agency: &mut self.agency,
            counts: &mut self.counts,
        }
    }

    /// Whether reading must wait: a parked request holds a full buffer, the
    /// output is blocked, or the connection is closing.
    pub fn reading_paused(&self) -> bool {
        match self.stage {
            Stage::Closing => true,
            Stage::Parked { .. } => self.input.len() >= INPUT_CAPACITY,
            Stage::Receiving | Stage::Answering { .. } => self.output_blocked(),
        }
    }

    /// Too much output waits to go out: decoding waits until a write drains it.
    pub fn output_blocked(&self) -> bool {
        self.pending_output() >= OUTPUT_HIGH_WATER
    }

    /// Bytes written to the socket but not taken yet.
    pub fn unsent(&self) -> usize {
        self.out.len() - self.out_sent
    }

    /// Reply bytes waiting for the socket, and held ones at the most they
    /// may settle into (a held ACK may become an `ERROR STORAGE`).
    pub fn pending_output(&self) -> usize {
        self.replies.worst_len() + self.unsent()
    }

    /// The peer hung up and every whole request it sent is answered and
    /// sent (no reply still held for a commit under way).
    pub fn finished(&self) -> bool {
        if !self.replies.is_empty() {
            return false;
        }
        match self.stage {
            Stage::Closing => true,
            Stage::Receiving => {
                self.peer_closed
                    && !self.marks.queued
                    && !self.has_unsent()
                    && matches!(wire::decode(&self.input), Ok(None))
            }
            _ => false,
        }
    }

    /// Reads once into `scratch` and appends to the input buffer.
    pub fn read(&mut self, scratch: &mut [u8]) -> io::Result<ReadOutcome> {
        let room = INPUT_CAPACITY - self.input.len();
        if room == 0 {
            return Ok(ReadOutcome::Full);
        }
        loop {
            let read = self.transport.read(&mut scratch[..room]);
            // A handshake completed by this read binds before any frame.
            if let Some(agency) = self.transport.take_verified_agency() {
                self.bind(agency);
            }
            match read {
                Ok(0) => {
                    self.peer_closed = true;
                    self.may_read = false;
                    return Ok(ReadOutcome::Closed);
                }
                Ok(n) => {
                    self.traffic.received += n as u64;
                    self.input.extend_from_slice(&scratch[..n]);
                    if n < room && self.transport.short_read_drains() && !self.read_closed {
                        // The kernel gave less than there was room for, so
                        // the socket is empty: bytes that come later raise a
                        // new edge. Asking again would only hear WouldBlock,
                        // one syscall per turn (a third of all reads in a
                        // bench of 1,000 agencies). Once the poller has said
                        // the peer closed, it will not say so again: read on
                        // to the end.
                        self.may_read = false;
                        return Ok(ReadOutcome::Drained);
                    }
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

    /// Drops the first `n` input bytes (whole frames that were handled);
    /// releases buffer memory while it waits parked.
    pub fn consume(&mut self, n: usize) {
        if n > 0 {
            self.input.drain(..n);
            if self.input.is_empty() && self.input.capacity() > KEEP_CAPACITY {
                self.input = Vec::new();
            }
        }
        if self.is_parked() {
            self.input.shrink_to_fit();
        }
    }

    /// Moves this iteration's replies to the output, after the group commit.
    pub fn settle(&mut self, committed: bool) {
        self.replies.settle(committed, &mut self.out);
    }

    /// Writes as much output as the socket takes. `Ok(true)` when all of
    /// it went, and all the transport holds (TLS records, a handshake's).
    pub fn write(&mut self, now: Instant) -> io::Result<bool> {
        let sent = write_until_blocked(&mut self.transport, &self.out[self.out_sent..])?;
        self.traffic.sent += sent as u64;
        if sent > 0 {
            self.out_sent += sent;
            self.progress(now);
        }
        if self.out_sent < self.out.len() {
            return Ok(false);
        }
        self.out.clear();
        self.out_sent = 0;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        loop {
            match self.transport.flush() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                flushed => return flushed,
            }
        }
    }

    /// Sends `frames` after whatever output waits: straight to the
    /// transport when nothing does (no copy into the output buffer, for
    /// bytes encoded elsewhere, such as an agency's answer), and whatever
    /// the socket does not take is kept as output, to be written as usual.
    pub fn send(&mut self, frames: &[u8], now: Instant) -> io::Result<()> {
        let mut sent = 0;
        if self.out_sent == self.out.len() {
            sent = write_until_blocked(&mut self.transport, frames)?;
            self.traffic.sent += sent as u64;
            if sent > 0 {
                self.progress(now);
            }
        }
        self.out.extend_from_slice(&frames[sent..]);
        Ok(())
    }

    /// Whether output is waiting for the socket (the transport's included).
    pub fn has_unsent(&self) -> bool {
        self.out_sent < self.out.len() || self.transport.wants_write()
    }

    /// Before the central closes it: a TLS peer is sent close_notify.
    pub fn close_notify(&mut self) {
        self.transport.close_notify();
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(self.transport.socket(), token, Interest::READABLE)
    }

    /// Asks for WRITABLE only while bytes are left for the socket.
    pub fn want_writable(
        &mut self,
        registry: &Registry,
        token: Token,
        want: bool,
    ) -> io::Result<()> {
        if want != self.writable_registered {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(self.transport.socket(), token, interest)?;
            self.writable_registered = want;
        }
        Ok(())
    }

    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(self.transport.socket());
    }

    /// The line of its close, with the request lines that went unlogged.
    pub fn log_closed(&self) {
        let (peer, unlogged) = (self.peer, self.request_lines_unlogged());
        if unlogged > 0 {
            warn!(
                "action: cerrar_conexion | result: success | peer: {peer} | lineas_sin_registrar: {unlogged}"
            );
        } else {
            debug!("action: cerrar_conexion | result: success | peer: {peer}");
        }
    }
}

/// Writes `bytes` to the transport until it has taken them all or would
/// block; returns how many it took.
fn write_until_blocked(transport: &mut Transport, bytes: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < bytes.len() {
        match transport.write(&bytes[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};

    /// A connection over a loopback socket, and the agency's end of it.
    fn connected() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let agency = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, peer) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        let socket = mio::net::TcpStream::from_std(socket);
        let conn = Connection::new(
            Transport::new(socket, None).unwrap(),
            peer,
            0,
            Instant::now(),
        );
        (conn, agency)
    }

    /// Reads until the bytes the agency sent are in (loopback delivers them
    /// within the write, but a loaded machine may lag): the first outcome
    /// that brought bytes, or the close.
    fn read_some(conn: &mut Connection, scratch: &mut [u8]) -> ReadOutcome {
        for _ in 0..1000 {
            conn.mark_readable();
            let before = conn.input.len();
            let outcome = conn.read(scratch).unwrap();
            if conn.input.len() > before || outcome == ReadOutcome::Closed {
                return outcome;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the agency's bytes never arrived");
    }

    /// The loop decodes a request only while the output is below the
    /// high-water mark; a commit that fails turns each held ACK into a
    /// longer `ERROR STORAGE`, and the output must stay within one reply
    /// of the mark all the same.
    #[test]
    fn a_failed_commit_keeps_the_output_within_its_high_water_mark() {
        let (mut conn, _agency) = connected();
        let mut acks = 0;
        while !conn.output_blocked() {
            conn.replies().push(true, |o| wire::encode_ack(o, 1, acks));
            acks += 1;
        }
        conn.settle(false);
        assert!(
            conn.pending_output() <= OUTPUT_HIGH_WATER + MAX_FRAME,
            "{acks} held ACKs became {} bytes of ERROR STORAGE (high-water mark {OUTPUT_HIGH_WATER})",
            conn.pending_output()
        );
    }

    #[test]
    fn a_read_that_empties_a_plain_socket_ends_the_turn_without_asking_again() {
        let (mut conn, mut agency) = connected();
        let mut scratch = vec![0; INPUT_CAPACITY];
        agency.write_all(&[7; 100]).unwrap();
        assert_eq!(read_some(&mut conn, &mut scratch), ReadOutcome::Drained);
        assert_eq!(conn.input, vec![7; 100]);
        assert!(!conn.may_read(), "the next read waits for the poller");
    }

    #[test]
    fn a_read_that_fills_the_room_reads_on() {
        let (mut conn, mut agency) = connected();
        let mut scratch = vec![0; INPUT_CAPACITY];
        agency.write_all(&vec![7; INPUT_CAPACITY + 10]).unwrap();
        let mut outcome = read_some(&mut conn, &mut scratch);
        while outcome == ReadOutcome::Drained && conn.input.len() < INPUT_CAPACITY {
            // On a loaded machine the kernel may hand the bytes over in parts.
            outcome = read_some(&mut conn, &mut scratch);
        }
        assert_eq!(outcome, ReadOutcome::Data);
        assert_eq!(conn.input.len(), INPUT_CAPACITY);
        assert_eq!(conn.read(&mut scratch).unwrap(), ReadOutcome::Full);
    }

    #[test]
    fn once_the_poller_saw_the_close_a_short_read_reads_on_to_the_end() {
        let (mut conn, mut agency) = connected();
        let mut scratch = vec![0; INPUT_CAPACITY];
        agency.write_all(&[7; 100]).unwrap();
        agency.shutdown(Shutdown::Write).unwrap();
        // The poller reports the close with the bytes, once: edge-triggered.
        conn.mark_read_closed();
        assert_eq!(read_some(&mut conn, &mut scratch), ReadOutcome::Data);
        assert_eq!(read_some(&mut conn, &mut scratch), ReadOutcome::Closed);
        assert_eq!(conn.input, vec![7; 100]);
        assert!(conn.peer_gone());
    }
}
