//! The central's single-threaded mio loop: accept, read, decode, answer,
//! park, wake, commit, write, close.
//!
//! One iteration of [`Server::run`]:
//! 1. poll for readiness (no wait when connections are ready without an event);
//! 2. accept; mark connections readable or writable and queue them;
//! 3. drive each queued connection: read into its bounded buffer, decode
//!    whole frames, handle them in order (bets are *staged*, replies held);
//! 4. on the periodic sweep, answer parked requests whose time is up and
//!    close idle or slow connections;
//! 5. group commit: one write and one `fdatasync` for every bet and close
//!    staged in this iteration, then the held replies are released (or turned
//!    into `ERROR STORAGE` if the disk refused); if this commit closed the
//!    last agency, the draw happens and every parked request is unparked;
//! 6. write replies to the sockets; bytes the socket does not take wait for
//!    WRITABLE, which is asked for only then.
//!
//! Unparking happens only in step 5, and an unparked connection is queued,
//! so the frames buffered behind its parked request are decoded at step 3 of
//! the next iteration, which does not wait.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use log::{debug, error, info, log_enabled, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::bet;
use crate::config::Config;
use crate::connection::{self, Connection, INPUT_CAPACITY, OUTPUT_HIGH_WATER, ReadOutcome, Stage};
use crate::lottery::{BatchVerdict, DoneVerdict, Lottery, Refusal};
use crate::storage::{Storage, StorageError};
use crate::wire::{self, Date, ErrorCode, Frame};

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// How often parked and idle connections are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(50);
/// Reads one connection may do per iteration before others get their turn.
const READS_PER_TURN: usize = 8;
/// A loop iteration stops driving connections once this many bets are
/// staged, and commits them: it bounds the memory a group holds and how
/// long its first ACK waits, while still sharing one fsync among thousands
/// of bets. Connections not driven stay queued for the next iteration.
const GROUP_COMMIT_BETS: u64 = 100_000;
/// The kernel send buffer of every agency's socket.
const SEND_BUFFER: usize = 64 * 1024;
/// How long shutdown keeps writing what is owed to slow readers.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(500);

/// Why the central could not start.
#[derive(Debug)]
pub enum StartError {
    Storage(StorageError),
    Listen { address: String, error: io::Error },
    Io(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Storage(e) => write!(f, "cannot open the bets file: {e}"),
            StartError::Listen { address, error } => {
                write!(f, "cannot listen on {address}: {error}")
            }
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A batch staged this iteration, logged once the commit says how it went.
struct StagedBatch {
    agency: u32,
    stored: u32,
}

/// A close staged this iteration, logged after the commit.
struct StagedClose {
    agency: u32,
    total: u32,
}

pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    connections: Slab<Connection>,
    lottery: Lottery,
    storage: Storage,
    config: Config,
    /// Connections to drive without waiting for an event.
    ready: VecDeque<Token>,
    /// Connections with replies staged this iteration.
    touched: Vec<Token>,
    staged_batches: Vec<StagedBatch>,
    staged_closes: Vec<StagedClose>,
    /// Documents and numbers of the bets staged this iteration, kept only
    /// when DEBUG logging wants a line per stored bet.
    staged_bet_log: Vec<(Box<str>, u16)>,
    scratch: Vec<u8>,
    today: Date,
    now: Instant,
    /// When the draw unparked requests, and how many: the next iteration
    /// answers them and logs how long that took.
    waking: Option<(Instant, usize)>,
    /// A descriptor held in reserve, so that connections can still be
    /// taken off the listen queue and refused when descriptors run out.
    spare_descriptor: Option<std::fs::File>,
    /// Accepting failed for want of resources: try again at every sweep,
    /// since the listener will not report the queued connections again.
    accept_stalled: bool,
}

impl Server {
    /// Opens the files (recovering a previous run), binds the listener and
    /// installs the signal handlers. Logs the effective config.
    pub fn bind(config: Config) -> Result<Server, StartError> {
        info!("action: config | result: success | {}", config.describe());
        let (storage, recovery) = Storage::open(
            &config.bets_file,
            &config.journal_file,
            config.agencies,
            config.winning_number,
            config.sync,
        )
        .map_err(StartError::Storage)?;
        let stored: u64 = recovery.agencies.iter().map(|a| a.stored as u64).sum();
        let closed = recovery.agencies.iter().filter(|a| a.closed).count();
        info!(
            "action: recuperar | result: success | apuestas: {stored} | agencias_cerradas: {closed} | archivo: {}",
            config.bets_file.display()
        );
        let lottery = Lottery::recovered(recovery.agencies, config.winning_number);
        if lottery.drawn() {
            info!("action: sorteo | result: success");
        }

        let listener = listen(&config)?;
        let local_addr = listener.local_addr().map_err(StartError::Io)?;
        let poll = Poll::new().map_err(StartError::Io)?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(StartError::Io)?;
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(StartError::Io)?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(StartError::Io)?;
        info!("action: escuchar | result: success | address: {local_addr}");
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            connections: Slab::new(),
            lottery,
            storage,
            config,
            ready: VecDeque::new(),
            touched: Vec::new(),
            staged_batches: Vec::new(),
            staged_closes: Vec::new(),
            staged_bet_log: Vec::new(),
            scratch: vec![0; INPUT_CAPACITY],
            today: bet::today(),
            now: Instant::now(),
            waking: None,
            spare_descriptor: std::fs::File::open("/dev/null").ok(),
            accept_stalled: false,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let timeout = if self.ready.is_empty() {
                next_sweep.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = Instant::now();
            let mut stop = None;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => {
                        if let Some(signal) = self.signals.pending().next() {
                            stop = Some(signal);
                        }
                    }
                    token => {
                        if let Some(conn) = self.connections.get_mut(token.0) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                conn.may_read = true;
                            }
                            enqueue(&mut self.ready, token, conn);
                        }
                    }
                }
            }
            if let Some(signal) = stop {
                return self.shutdown(signal);
            }
            let waking = self.waking.take();
            self.drive_ready();
            if self.now >= next_sweep {
                if std::mem::take(&mut self.accept_stalled) {
                    if self.spare_descriptor.is_none() {
                        self.spare_descriptor = std::fs::File::open("/dev/null").ok();
                    }
                    self.accept();
                }
                self.sweep();
                next_sweep = self.now + SWEEP_EVERY;
            }
            self.commit();
            self.flush_touched();
            if let Some((drawn_at, parked)) = waking {
                info!(
                    "action: despertar_pedidos | result: success | pedidos: {parked} | ms: {:.2}",
                    drawn_at.elapsed().as_secs_f64() * 1000.0
                );
            }
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((mut socket, peer)) => {
                    if self.connections.len() >= self.config.max_connections {
                        warn!(
                            "action: aceptar_conexion | result: fail | peer: {peer} | error: connection cap of {} reached",
                            self.config.max_connections
                        );
                        continue;
                    }
                    let _ = socket.set_nodelay(true);
                    // Replies are small: a fixed send buffer keeps a peer
                    // that never reads from holding megabytes of them.
                    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
                    let entry = self.connections.vacant_entry();
                    let token = Token(entry.key());
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut socket, token, Interest::READABLE)
                    {
                        warn!(
                            "action: aceptar_conexion | result: fail | peer: {peer} | error: {e}"
                        );
                        continue;
                    }
                    debug!("action: aceptar_conexion | result: success | peer: {peer}");
                    entry.insert(Connection::new(socket, peer, self.now));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_out_of_descriptors(&e) => {
                    // The listener is edge-triggered: the connections already
                    // queued will not be reported again. Spend the spare
                    // descriptor to take one and close it, so the queue drains
                    // with a refusal each instead of hanging.
                    let Some(spare) = self.spare_descriptor.take() else {
                        error!("action: aceptar_conexion | result: fail | error: {e}");
                        self.accept_stalled = true;
                        return;
                    };
                    drop(spare);
                    let refused = listener.accept().map(|(socket, peer)| {
                        drop(socket);
                        peer
                    });
                    // Only now that the refused socket is closed is there a
                    // descriptor to hold in reserve again.
                    self.spare_descriptor = std::fs::File::open("/dev/null").ok();
                    match refused {
                        Ok(peer) => warn!(
                            "action: aceptar_conexion | result: fail | peer: {peer} | error: out of file descriptors ({e})"
                        ),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) => {
                            error!("action: aceptar_conexion | result: fail | error: {e}");
                            self.accept_stalled = true;
                            return;
                        }
                    }
                }
                Err(e) => {
                    error!("action: aceptar_conexion | result: fail | error: {e}");
                    self.accept_stalled = true;
                    return;
                }
            }
        }
    }

    fn drive_ready(&mut self) {
        for _ in 0..self.ready.len() {
            if self.storage.staged_bets() >= GROUP_COMMIT_BETS {
                break;
            }
            let Some(token) = self.ready.pop_front() else {
                break;
            };
            if let Some(conn) = self.connections.get_mut(token.0) {
                conn.queued = false;
                self.drive(token);
            }
        }
    }

    /// Reads, decodes and answers one connection as far as its stage, its
    /// buffers and its turn allow.
    fn drive(&mut self, token: Token) {
        self.touch(token);
        for _ in 0..READS_PER_TURN {
            self.process(token);
            let conn = &mut self.connections[token.0];
            let blocked = matches!(conn.stage, Stage::Closing)
                || conn.output_blocked
                || (matches!(conn.stage, Stage::Parked { .. })
                    && conn.input.len() >= INPUT_CAPACITY);
            if blocked || !conn.may_read {
                break;
            }
            match conn.read(&mut self.scratch) {
                Ok(ReadOutcome::Data) => continue,
                Ok(ReadOutcome::Drained) | Ok(ReadOutcome::Full) => {}
                Ok(ReadOutcome::Closed) => {
                    if let Stage::Parked { agency, .. } = conn.stage {
                        // A parked agency that hangs up is forgotten.
                        debug!(
                            "action: olvidar_pedido | result: success | agencia: {agency} | peer: {}",
                            conn.peer
                        );
                        self.close(token);
                        return;
                    }
                }
                Err(e) => {
                    self.lost(token, &e);
                    return;
                }
            }
            self.process(token);
            break;
        }
        let conn = &mut self.connections[token.0];
        if conn.may_read && !conn.output_blocked && conn.stage == Stage::Receiving {
            // The turn ended with bytes still in the socket.
            enqueue(&mut self.ready, token, conn);
        }
    }

    /// Decodes and handles the buffered frames of one connection, in order,
    /// until it parks, closes, runs out of whole frames or of output room.
    fn process(&mut self, token: Token) {
        let conn = &mut self.connections[token.0];
        let input = std::mem::take(&mut conn.input);
        let mut used = 0;
        loop {
            let conn = &mut self.connections[token.0];
            match conn.stage {
                Stage::Parked { .. } | Stage::Closing => break,
                Stage::Answering { agency, next } => {
                    if conn.pending_output() >= OUTPUT_HIGH_WATER {
                        conn.output_blocked = true;
                        break;
                    }
                    self.answer_winners(token, agency, next);
                }
                Stage::Receiving => {
                    if conn.pending_output() >= OUTPUT_HIGH_WATER {
                        conn.output_blocked = true;
                        break;
                    }
                    match wire::decode(&input[used..]) {
                        Ok(None) => break,
                        Ok(Some((frame, n))) => {
                            used += n;
                            conn.last_progress = self.now;
                            self.handle(token, frame);
                        }
                        Err(e) => {
                            warn!(
                                "action: recibir_trama | result: fail | peer: {} | error: {} | detail: {e}",
                                conn.peer,
                                e.code()
                            );
                            conn.replies.push(false, |out| {
                                wire::encode_error(out, e.code(), e.detail(), &e.to_string())
                            });
                            conn.stage = Stage::Closing;
                            break;
                        }
                    }
                }
            }
        }
        let conn = &mut self.connections[token.0];
        conn.input = input;
        conn.consume(used);
        if matches!(conn.stage, Stage::Parked { .. }) {
            conn.shrink();
        }
    }

    fn handle(&mut self, token: Token, frame: Frame<'_>) {
        match frame {
            Frame::Batch {
                agency,
                first,
                bets,
            } => self.handle_batch(token, agency, first, bets),
            Frame::Done { agency, total } => self.handle_done(token, agency, total),
            Frame::GetWinners { agency, wait } => self.handle_get_winners(token, agency, wait),
            other => {
                // A reply type sent to the central: it does not take those.
                let conn = &mut self.connections[token.0];
                let kind = other.kind();
                warn!(
                    "action: recibir_trama | result: fail | peer: {} | error: UNKNOWN_TYPE | detail: type 0x{kind:02x} is not a request",
                    conn.peer
                );
                conn.replies.push(false, |out| {
                    wire::encode_error(
                        out,
                        ErrorCode::UnknownType,
                        kind as u32,
                        "not a request type",
                    )
                });
                conn.stage = Stage::Closing;
            }
        }
    }

    fn handle_batch(&mut self, token: Token, agency: u32, first: u32, bets: wire::Bets<'_>) {
        let count = bets.len();
        let verdict = self.lottery.check_batch(agency, first, count);
        if let BatchVerdict::Refuse(r) = verdict
            && matches!(r.code, ErrorCode::UnknownAgency | ErrorCode::AgencyClosed)
        {
            return self.refuse_batch(token, agency, count, r);
        }
        for (i, b) in bets.iter().enumerate() {
            if let Err(why) = bet::validate(&b, self.today) {
                let refusal = Refusal {
                    code: ErrorCode::InvalidBet,
                    detail: i as u32,
                    reason: "",
                };
                let message = format!("bet {i}: {why}");
                return self.refuse_batch_with(token, agency, count, refusal, &message);
            }
        }
        match verdict {
            BatchVerdict::Refuse(r) => self.refuse_batch(token, agency, count, r),
            BatchVerdict::AlreadyStored { stored } => {
                self.staged_batches.push(StagedBatch { agency, stored: 0 });
                self.connections[token.0]
                    .replies
                    .push(true, |out| wire::encode_ack(out, agency, stored));
            }
            BatchVerdict::Store { skip } => {
                let keep_log = log_enabled!(log::Level::Debug);
                for b in bets.iter().skip(skip) {
                    self.storage.stage_bet(agency, &b);
                    // Validated above: the document is ASCII digits.
                    let document = std::str::from_utf8(b.document).unwrap_or_default();
                    self.lottery.stage_bet(agency, b.number, document);
                    if keep_log {
                        self.staged_bet_log.push((document.into(), b.number));
                    }
                }
                let stored = self.lottery.stored(agency).unwrap_or_default();
                self.staged_batches.push(StagedBatch {
                    agency,
                    stored: (count - skip) as u32,
                });
                self.connections[token.0]
                    .replies
                    .push(true, |out| wire::encode_ack(out, agency, stored));
            }
        }
    }

    fn refuse_batch(&mut self, token: Token, agency: u32, count: usize, r: Refusal) {
        self.refuse_batch_with(token, agency, count, r, r.reason);
    }

    fn refuse_batch_with(
        &mut self,
        token: Token,
        agency: u32,
        count: usize,
        r: Refusal,
        message: &str,
    ) {
        let conn = &mut self.connections[token.0];
        if conn.log_request_line() {
            warn!(
                "action: apuesta_recibida | result: fail | cantidad: {count} | agencia: {agency} | error: {} | detail: {} | motivo: {message}",
                r.code, r.detail
            );
        }
        // An error whose detail is a stored count depends on staged state.
        let durable = matches!(r.code, ErrorCode::OutOfOrder | ErrorCode::AgencyClosed);
        conn.replies.push(durable, |out| {
            wire::encode_error(out, r.code, r.detail, message)
        });
    }

    fn handle_done(&mut self, token: Token, agency: u32, total: u32) {
        let conn = &mut self.connections[token.0];
        match self.lottery.done(agency, total) {
            DoneVerdict::Close => {
                self.storage.stage_close(agency, total);
                self.staged_closes.push(StagedClose { agency, total });
                conn.replies
                    .push(true, |out| wire::encode_ack(out, agency, total));
            }
            DoneVerdict::AlreadyClosed { stored } => {
                conn.replies
                    .push(true, |out| wire::encode_ack(out, agency, stored));
            }
            DoneVerdict::Refuse(r) => {
                if conn.log_request_line() {
                    warn!(
                        "action: agencia_cerrada | result: fail | agencia: {agency} | total: {total} | error: {} | detail: {} | motivo: {}",
                        r.code, r.detail, r.reason
                    );
                }
                let durable = r.code == ErrorCode::MissingBets;
                conn.replies.push(durable, |out| {
                    wire::encode_error(out, r.code, r.detail, r.reason)
                });
            }
        }
    }

    fn handle_get_winners(&mut self, token: Token, agency: u32, wait: bool) {
        let conn = &mut self.connections[token.0];
        if let Err(r) = self.lottery.check_agency(agency) {
            if conn.log_request_line() {
                warn!(
                    "action: pedir_ganadores | result: fail | agencia: {agency} | error: {} | detail: {}",
                    r.code, r.detail
                );
            }
            conn.replies.push(false, |out| {
                wire::encode_error(out, r.code, r.detail, r.reason)
            });
        } else if self.lottery.drawn() {
            conn.stage = Stage::Answering { agency, next: 0 };
        } else if wait || self.lottery.draw_pending() {
            // Behind a DONE that closes the last agency, even a wait=0
            // request waits for the commit that runs the draw.
            debug!(
                "action: estacionar_pedido | result: in_progress | agencia: {agency} | peer: {}",
                conn.peer
            );
            conn.stage = Stage::Parked {
                agency,
                since: self.now,
                wait,
            };
        } else {
            // Answered as of the requests before it, staged closes included;
            // if those do not reach the disk, neither does this answer.
            let done = self.lottery.closed_with_staged();
            let expected = self.lottery.expected();
            let durable = done != self.lottery.closed();
            conn.replies
                .push(durable, |out| wire::encode_not_ready(out, done, expected));
        }
    }

    /// Stages WINNERS frames for `agency` from document `next` on, as long as
    /// the connection's output has room; returns the connection to
    /// `Receiving` once the frame with `last = 1` is staged.
    fn answer_winners(&mut self, token: Token, agency: u32, mut next: usize) {
        let conn = &mut self.connections[token.0];
        let winners = self.lottery.winners(agency).unwrap_or_default();
        let total = winners.len();
        loop {
            let rest = &winners[next..];
            let n = wire::winners_frame_split(rest);
            let last = next + n == total;
            conn.replies.push(false, |out| {
                wire::encode_winners(out, agency, total as u32, last, &rest[..n])
            });
            next += n;
            if last {
                if conn.log_request_line() {
                    info!(
                        "action: ganadores_enviados | result: success | agencia: {agency} | cant_ganadores: {total}"
                    );
                }
                conn.stage = Stage::Receiving;
                return;
            }
            if conn.pending_output() >= OUTPUT_HIGH_WATER {
                conn.stage = Stage::Answering { agency, next };
                return;
            }
        }
    }

    /// Answers parked requests whose time is up with NOT_READY, and closes
    /// connections that made no progress for the idle timeout.
    fn sweep(&mut self) {
        self.today = bet::today();
        let (done, expected) = (self.lottery.closed(), self.lottery.expected());
        let mut idle = Vec::new();
        for (key, conn) in self.connections.iter_mut() {
            match conn.stage {
                Stage::Parked { agency, since, .. } => {
                    if self.now.duration_since(since) >= self.config.park_timeout {
                        debug!(
                            "action: estacionar_pedido | result: success | agencia: {agency} | respuesta: NOT_READY"
                        );
                        conn.replies
                            .push(false, |out| wire::encode_not_ready(out, done, expected));
                        conn.stage = Stage::Receiving;
                        conn.last_progress = self.now;
                        enqueue(&mut self.ready, Token(key), conn);
                        mark_touched(&mut self.touched, Token(key), conn);
                    }
                }
                _ => {
                    if self.now.duration_since(conn.last_progress) >= self.config.idle_timeout {
                        idle.push(key);
                    }
                }
            }
        }
        for key in idle {
            let peer = self.connections[key].peer;
            info!(
                "action: cerrar_conexion | result: success | peer: {peer} | motivo: no progress for {} ms",
                self.config.idle_timeout.as_millis()
            );
            self.close(Token(key));
        }
    }

    /// The group commit: makes this iteration's bets and closes durable with
    /// one sync, then releases the replies held for it.
    fn commit(&mut self) {
        let committed = if self.storage.has_staged() {
            match self.storage.commit() {
                Ok(_) => true,
                Err(e) => {
                    error!("action: guardar_apuestas | result: fail | error: {e}");
                    false
                }
            }
        } else {
            true
        };
        let drew = if committed {
            self.lottery.commit()
        } else {
            self.lottery.rollback();
            self.answer_deferred_not_ready();
            false
        };
        for batch in self.staged_batches.drain(..) {
            if committed {
                info!(
                    "action: apuesta_recibida | result: success | cantidad: {}",
                    batch.stored
                );
            } else {
                warn!(
                    "action: apuesta_recibida | result: fail | cantidad: {} | agencia: {} | error: STORAGE",
                    batch.stored, batch.agency
                );
            }
        }
        for (document, number) in self.staged_bet_log.drain(..) {
            if committed {
                debug!(
                    "action: apuesta_almacenada | result: success | dni: {document} | numero: {number}"
                );
            }
        }
        for close in self.staged_closes.drain(..) {
            if committed {
                info!(
                    "action: agencia_cerrada | result: success | agencia: {} | total: {}",
                    close.agency, close.total
                );
            } else {
                warn!(
                    "action: agencia_cerrada | result: fail | agencia: {} | total: {} | error: STORAGE",
                    close.agency, close.total
                );
            }
        }
        for &token in &self.touched {
            if let Some(conn) = self.connections.get_mut(token.0) {
                conn.settle(committed);
            }
        }
        if drew {
            info!("action: sorteo | result: success");
            self.unpark_all();
        }
    }

    /// The commit that was to run the draw failed: wait=0 requests parked
    /// behind it get the NOT_READY they would have got without it.
    fn answer_deferred_not_ready(&mut self) {
        let (done, expected) = (self.lottery.closed(), self.lottery.expected());
        for (key, conn) in self.connections.iter_mut() {
            if let Stage::Parked { wait: false, .. } = conn.stage {
                conn.replies
                    .push(false, |out| wire::encode_not_ready(out, done, expected));
                conn.stage = Stage::Receiving;
                enqueue(&mut self.ready, Token(key), conn);
                mark_touched(&mut self.touched, Token(key), conn);
            }
        }
    }

    /// The draw happened: every parked request is answered, in the next
    /// iteration, with the frames buffered behind it decoded after it.
    fn unpark_all(&mut self) {
        let mut parked = 0;
        for (key, conn) in self.connections.iter_mut() {
            if let Stage::Parked { agency, .. } = conn.stage {
                conn.stage = Stage::Answering { agency, next: 0 };
                enqueue(&mut self.ready, Token(key), conn);
                parked += 1;
            }
        }
        self.waking = Some((Instant::now(), parked));
    }

    fn flush_touched(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for &token in &touched {
            let Some(conn) = self.connections.get_mut(token.0) else {
                continue;
            };
            conn.touched = false;
            self.flush(token);
        }
        self.touched = touched;
        self.touched.clear();
    }

    /// Writes a connection's output, asks for WRITABLE only when bytes are
    /// left, and closes it when it has nothing more to do.
    fn flush(&mut self, token: Token) {
        let conn = &mut self.connections[token.0];
        let all_sent = match conn.write(self.now) {
            Ok(all) => all,
            Err(e) => return self.lost(token, &e),
        };
        let want_writable = !all_sent;
        if want_writable != conn.writable_registered {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.socket, token, interest)
            {
                return self.lost(token, &e);
            }
            conn.writable_registered = want_writable;
        }
        if conn.output_blocked && conn.pending_output() < OUTPUT_HIGH_WATER {
            conn.output_blocked = false;
            enqueue(&mut self.ready, token, conn);
        }
        if !all_sent {
            return;
        }
        let finished = match conn.stage {
            Stage::Closing => true,
            // The peer hung up and every whole request it sent is answered.
            Stage::Receiving => {
                conn.peer_closed && !conn.queued && matches!(wire::decode(&conn.input), Ok(None))
            }
            _ => false,
        };
        if finished {
            self.close(token);
        }
    }

    /// A socket error: a hang-up is routine, anything else is worth a warning.
    fn lost(&mut self, token: Token, e: &io::Error) {
        let peer = self.connections[token.0].peer;
        if connection::is_disconnect(e) {
            debug!("action: cerrar_conexion | result: success | peer: {peer} | motivo: {e}");
        } else {
            warn!("action: cerrar_conexion | result: fail | peer: {peer} | error: {e}");
        }
        self.close(token);
    }

    /// The only place a connection is removed: deregister, then drop.
    fn close(&mut self, token: Token) {
        let mut conn = self.connections.remove(token.0);
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if conn.request_lines_unlogged > 0 {
            warn!(
                "action: cerrar_conexion | result: success | peer: {} | lineas_sin_registrar: {}",
                conn.peer, conn.request_lines_unlogged
            );
        } else {
            debug!(
                "action: cerrar_conexion | result: success | peer: {}",
                conn.peer
            );
        }
    }

    fn touch(&mut self, token: Token) {
        mark_touched(&mut self.touched, token, &mut self.connections[token.0]);
    }

    /// SIGTERM or SIGINT: stop accepting, answer parked requests with
    /// SHUTTING_DOWN, send what is owed, sync and close the files, close every
    /// connection, logging each resource as it closes.
    fn shutdown(mut self, signal: i32) -> io::Result<()> {
        let name = if signal == SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        info!("action: shutdown | result: in_progress | signal: {name}");
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
            drop(listener);
            info!(
                "action: cerrar_listener | result: success | address: {}",
                self.local_addr
            );
        }
        let parked: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| matches!(c.stage, Stage::Parked { .. }))
            .map(|(k, _)| k)
            .collect();
        for key in parked {
            self.touch(Token(key));
            let conn = &mut self.connections[key];
            conn.replies.push(false, |out| {
                wire::encode_error(
                    out,
                    ErrorCode::ShuttingDown,
                    0,
                    "the central is shutting down",
                )
            });
            conn.stage = Stage::Closing;
        }
        self.commit();
        let keys: Vec<usize> = self.connections.iter().map(|(k, _)| k).collect();
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        let mut events = Events::with_capacity(1024);
        loop {
            let mut owed = false;
            for &key in &keys {
                if let Some(conn) = self.connections.get_mut(key) {
                    match conn.write(Instant::now()) {
                        Ok(all) => owed |= !all,
                        Err(_) => {
                            self.connections.remove(key);
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !owed || left.is_zero() {
                break;
            }
            for (key, conn) in self.connections.iter_mut() {
                if conn.has_unsent() && !conn.writable_registered {
                    let _ = self.poll.registry().reregister(
                        &mut conn.socket,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    conn.writable_registered = true;
                }
            }
            let _ = self
                .poll
                .poll(&mut events, Some(left.min(Duration::from_millis(50))));
        }
        for (_, mut conn) in std::mem::take(&mut self.connections) {
            let _ = self.poll.registry().deregister(&mut conn.socket);
            info!(
                "action: cerrar_conexion | result: success | peer: {}",
                conn.peer
            );
        }
        let bets_path = self.storage.bets_path().to_owned();
        if let Err(e) = self.storage.close() {
            error!(
                "action: cerrar_archivo | result: fail | archivo: {} | error: {e}",
                bets_path.display()
            );
            return Err(e);
        }
        info!("action: shutdown | result: success | signal: {name}");
        Ok(())
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Lists a connection among those whose replies the commit settles and the
/// flush writes, once per iteration.
fn mark_touched(touched: &mut Vec<Token>, token: Token, conn: &mut Connection) {
    if !conn.touched {
        conn.touched = true;
        touched.push(token);
    }
}

fn enqueue(ready: &mut VecDeque<Token>, token: Token, conn: &mut Connection) {
    if !conn.queued {
        conn.queued = true;
        ready.push_back(token);
    }
}

/// Binds the listening socket with the configured backlog.
fn listen(config: &Config) -> Result<TcpListener, StartError> {
    let address = format!("{}:{}", config.ip, config.port);
    let fail = |error: io::Error| StartError::Listen {
        address: address.clone(),
        error,
    };
    let addr = (config.ip.as_str(), config.port)
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| {
            fail(io::Error::new(
                io::ErrorKind::NotFound,
                "the name has no address",
            ))
        })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(config.listen_backlog).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(TcpListener::from_std(socket.into()))
}
