//! The central's single-threaded mio loop, and only the loop: poll, accept,
//! dispatch, commit, write, close.
//!
//! One iteration of [`Server::run`]:
//! 1. poll for readiness (no wait when connections are ready without an
//!    event; else until the next tick or deadline);
//! 2. accept; mark connections readable or writable and queue them;
//! 3. drive each queued connection: read into its bounded buffer, decode
//!    whole frames, hand each to [`requests`] (bets are *staged*, replies
//!    held), park or stream winners as the verdict says;
//! 4. take the deadlines that are due: parked requests whose time is up are
//!    answered, idle connections and unfinished TLS handshakes closed;
//! 5. group commit ([`Central::commit`]), then the held replies are settled
//!    (or turned into `ERROR STORAGE` if the disk refused); if the commit
//!    ran the draw, every parked request is unparked;
//! 6. write replies to the sockets; bytes the socket does not take wait for
//!    WRITABLE, which is asked for only then. A request the draw unparked is
//!    answered here, as its connection's turn to write comes: its WINNERS
//!    follow the ACK of the DONE that ran the draw in the same pass.
//!
//! Unparking queues the connection, so the frames buffered behind its parked
//! request are decoded at step 3 of the next iteration, which does not wait.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::central::requests::{self, Verdict};
use crate::central::state::Central;
use crate::config::Config;
use crate::connections::commit::commit_group;
use crate::connections::connection::{Connection, INPUT_CAPACITY, ReadOutcome, Stage};
use crate::connections::parking::{self, Parking};
use crate::connections::schedule::Schedule;
use crate::net::accept::Acceptor;
use crate::net::accept::ListenError;
use crate::net::transport::{CloseLog, TlsSetup, Transport};
use crate::observe::endpoint::Endpoint;
use crate::shutdown;
pub use crate::start::StartError;
use crate::support::deadlines::Timer;
use crate::watch::{self, Sources, Watch};
use crate::wire;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// The store's waker: a commit under way on its thread is over.
const STORE: Token = Token(usize::MAX - 3);
/// The observation port's listener (`METRICS_PORT`); its connections'
/// tokens are [`Endpoint::owns`]'s.
const METRICS: Token = Token(usize::MAX - 4);
/// How often the date is refreshed and a stalled accept retried.
const TICK: Duration = Duration::from_millis(50);
/// Reads one connection may do per iteration before others get their turn.
const READS_PER_TURN: usize = 8;
/// A loop iteration stops driving connections once this many bets are
/// staged, and commits them: it bounds the memory a group holds and how
/// long its first ACK waits, while still sharing one fsync among thousands
/// of bets. Connections not driven stay queued for the next iteration.
const GROUP_COMMIT_BETS: u64 = 100_000;

pub struct Server {
    poll: Poll,
    acceptor: Acceptor,
    signals: Signals,
    connections: Slab<Connection>,
    central: Central,
    parking: Parking,
    schedule: Schedule,
    /// Ids for new connections (slab keys are reused, ids never).
    next_id: u64,
    scratch: Vec<u8>,
    /// Reused by every flush, to list the touched connections.
    flushing: Vec<usize>,
    /// Reused by every expiry, to list the connections to close and why.
    expired: Vec<(usize, Timer)>,
    /// Mutual TLS, when configured: every connection is TLS then.
    tls: Option<TlsSetup>,
    close_log: CloseLog,
    now: Instant,
    /// When the draw unparked requests, and how many: the flush of the same
    /// iteration answers them and logs how long that took.
    waking: Option<(Instant, usize)>,
    /// `/metrics`, `/status` and the page, when `METRICS_PORT` is set.
    http: Option<Endpoint>,
    watch: Watch,
}

impl Server {
    /// Opens the files (recovering a previous run), binds the listener and
    /// installs the signal handlers. Logs the effective config.
    pub fn bind(config: Config) -> Result<Server, StartError> {
        info!("action: config | result: success | {}", config.describe());
        let tls = TlsSetup::new(config.tls.as_ref(), config.agencies).map_err(StartError::Tls)?;
        let mut central = Central::open(&config.store(), config.agencies, config.winning_number)
            .map_err(StartError::Storage)?;
        let poll = Poll::new().map_err(StartError::Io)?;
        central
            .register(poll.registry(), STORE)
            .map_err(StartError::Io)?;
        let acceptor = Acceptor::bind(&config.listen(), poll.registry(), LISTENER)
            .map_err(StartError::Listen)?;
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(StartError::Io)?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(StartError::Io)?;
        info!(
            "action: escuchar | result: success | address: {} | tls: {}",
            acceptor.local_addr(),
            config.tls_mode()
        );
        let address = acceptor.local_addr();
        let http = match config.metrics_port {
            Some(port) => Some(bind_metrics(&config.ip, port, poll.registry())?),
            None => None,
        };
        if config.tls.is_none() && !address.ip().is_loopback() {
            warn!(
                "action: seguridad | result: in_progress | detail: plain TCP on {address}: any host that reaches it can send, close or read the bets of any agency, and read or change them on the wire; mutual TLS (TLS_CERT, TLS_KEY and TLS_CLIENT_CA; generar-compose.sh --tls) authenticates each agency by its certificate and encrypts the link"
            );
        }
        let watch = Watch::new(config.agencies, central.lottery().drawn());
        Ok(Server {
            poll,
            acceptor,
            signals,
            connections: Slab::new(),
            central,
            parking: Parking::new(config.park_timeout, config.max_parked_per_agency),
            schedule: Schedule::new(
                config.idle_timeout,
                config.tls_handshake_timeout,
                config.park_timeout,
            ),
            next_id: 0,
            scratch: vec![0; INPUT_CAPACITY],
            flushing: Vec::new(),
            expired: Vec::new(),
            tls,
            close_log: CloseLog::default(),
            now: Instant::now(),
            waking: None,
            http,
            watch,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }

    /// The observation port's address, when `METRICS_PORT` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(Endpoint::local_addr)
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        loop {
            let timeout = if self.schedule.has_ready() {
                Duration::ZERO
            } else {
                let wake_at = self
                    .schedule
                    .next_deadline()
                    .map_or(next_tick, |d| d.min(next_tick));
                wake_at.saturating_duration_since(Instant::now())
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
                    SIGNALS => stop = stop.or(self.signals.pending().next()),
                    // The commit step below takes the outcome.
                    STORE => {}
                    METRICS => self.accept_http(),
                    token if Endpoint::owns(token) => self.serve_http(token),
                    Token(key) => {
                        if let Some(conn) = self.connections.get_mut(key) {
                            if event.is_read_closed() || event.is_error() {
                                // Remembered: edge-triggered, it is not said twice.
                                conn.mark_read_closed();
                            }
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                conn.mark_readable();
                            }
                            self.schedule.enqueue(key, conn);
                        }
                    }
                }
            }
            if let Some(signal) = stop {
                return shutdown::run(self.into_parts(), signal);
            }
            self.drive_ready();
            if self.now >= next_tick {
                self.central.refresh_today();
                self.acceptor.log_suppressed(self.now);
                self.parking.log_suppressed(self.now);
                if self.acceptor.take_stalled() {
                    self.accept();
                }
                if let Some(http) = &mut self.http {
                    http.expire(self.poll.registry(), self.now);
                    // Retries an accept an error cut short: the listener
                    // does not report the queued connections again.
                    http.accept(self.poll.registry(), self.now);
                }
                next_tick = self.now + TICK;
            }
            self.expire_deadlines();
            if let Some(fatal) = self.commit() {
                return Err(io::Error::other(fatal));
            }
            self.flush_touched();
            parking::log_woken(self.waking.take());
        }
    }

    fn accept(&mut self) {
        let (connections, schedule, registry) = (
            &mut self.connections,
            &mut self.schedule,
            self.poll.registry(),
        );
        let (next_id, now, tls) = (&mut self.next_id, self.now, self.tls.as_ref());
        let watch = &mut self.watch;
        self.acceptor
            .accept(connections.len(), now, |socket, peer| {
                let entry = connections.vacant_entry();
                let key = entry.key();
                let transport = Transport::new(socket, tls)?;
                let mut conn = Connection::new(transport, peer, *next_id, now);
                conn.register(registry, Token(key))?;
                *next_id += 1;
                watch.accepted();
                let conn = entry.insert(conn);
                // Read its first request now, not after this commit (a whole
                // fsync more on a slow disk).
                conn.mark_readable();
                schedule.enqueue(key, conn);
                schedule.admit(key, conn, now);
                Ok(())
            });
    }

    fn drive_ready(&mut self) {
        for _ in 0..self.schedule.ready_len() {
            if self.central.staged_bets() >= GROUP_COMMIT_BETS {
                break;
            }
            let Some(key) = self.schedule.pop_ready(&mut self.connections) else {
                break;
            };
            self.drive(key);
        }
    }

    /// Reads, decodes and answers one connection as far as its stage, its
    /// buffers and its turn allow.
    fn drive(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        self.schedule.touch(key, conn);
        for _ in 0..READS_PER_TURN {
            self.process(key);
            let conn = &mut self.connections[key];
            if conn.reading_paused() || !conn.may_read() || conn.is_deferred() {
                break;
            }
            match conn.read(&mut self.scratch) {
                Ok(ReadOutcome::Data) => continue,
                Ok(ReadOutcome::Drained | ReadOutcome::Full | ReadOutcome::Closed) => {}
                Err(e) => return self.lost(key, &e),
            }
            self.process(key);
            break;
        }
        let conn = &mut self.connections[key];
        if conn.may_read()
            && !conn.output_blocked()
            && conn.stage() == Stage::Receiving
            && !conn.is_deferred()
        {
            // The turn ended with bytes still in the socket.
            self.schedule.enqueue(key, conn);
        }
    }

    /// Decodes and handles the buffered frames of one connection, in order,
    /// until it parks, closes, runs out of whole frames or of output room.
    fn process(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        let mut used = 0;
        loop {
            if conn.output_blocked() {
                break;
            }
            let verdict = match conn.stage() {
                Stage::Parked { .. } => {
                    if conn.peer_gone() {
                        // Seen even behind a full buffer (the poller says it);
                        // what it is owed is still sent before it closes.
                        self.parking.hang_up(conn);
                    }
                    break;
                }
                Stage::Closing => break,
                Stage::Answering { agency, next } => {
                    answer_more(&self.central, conn, used, agency, next);
                    continue;
                }
                Stage::Receiving => {
                    let mut r = conn.requests(used);
                    match wire::decode(r.input) {
                        Ok(None) => break,
                        Ok(Some((frame, _)))
                            if self.central.commit_under_way() && stages(&frame) =>
                        {
                            // Nothing is staged while a commit is under way:
                            // the request waits, undecoded, for its outcome.
                            self.schedule.defer(key, conn);
                            break;
                        }
                        Ok(Some((frame, _)))
                            if stages(&frame)
                                && requests::named_agency(&frame)
                                    .filter(|&a| r.agency.is_none_or(|bound| bound == a))
                                    .is_some_and(|a| !self.central.counts_seen(a, r.counts)) =>
                        {
                            // A bet or close is decided on the agency's
                            // count: with a store other centrals share, it
                            // waits, undecoded, until that count is read.
                            // (GET_WINNERS needs no count: the draw comes
                            // as news.)
                            self.schedule.defer(key, conn);
                            break;
                        }
                        Ok(Some((frame, n))) => {
                            used += n;
                            let verdict = requests::handle(frame, &mut self.central, &mut r);
                            conn.progress(self.now);
                            self.watch.activity(conn.agency(), self.now);
                            verdict
                        }
                        Err(e) => requests::malformed(e, r.peer, r.replies),
                    }
                }
            };
            match verdict {
                Verdict::Continue => {}
                Verdict::Park { agency, wait } => {
                    let (now, schedule) = (self.now, &mut self.schedule);
                    self.parking
                        .park(key, conn, agency, wait, now, schedule, &self.central);
                }
                Verdict::AnswerWinners { agency } => {
                    conn.set_stage(Stage::Answering { agency, next: 0 })
                }
                Verdict::Close => conn.set_stage(Stage::Closing),
            }
        }
        conn.consume(used);
    }

    /// Answers parked requests whose time is up, and closes connections
    /// that made no progress for the idle timeout or whose TLS handshake
    /// did not complete in time.
    fn expire_deadlines(&mut self) {
        let mut due = std::mem::take(&mut self.expired);
        let (parking, lottery, now) = (&mut self.parking, self.central.lottery(), self.now);
        let park_due = |schedule: &mut Schedule, due, conn: &mut Connection| {
            parking.expire(due, conn, lottery, now, schedule)
        };
        self.schedule
            .expire(now, &mut self.connections, park_due, &mut due);
        for &(key, timer) in &due {
            let timeout = self.schedule.timeout(timer);
            self.close_log
                .expired(self.now, self.connections[key].peer(), timer, timeout);
            self.close(key);
        }
        due.clear();
        self.expired = due;
    }

    /// The group commit: this iteration's bets and closes made durable with
    /// one sync (or handed to the store's thread, whose outcome a later
    /// iteration takes), then the replies held for it settled. Returns the
    /// error if the store can no longer keep what was acknowledged.
    fn commit(&mut self) -> Option<String> {
        let (connections, schedule) = (&mut self.connections, &mut self.schedule);
        let (central, parking) = (&mut self.central, &mut self.parking);
        let settled = commit_group(central, connections, parking, schedule, self.now);
        if settled.woken.is_some() {
            self.watch.drawn(self.now);
        }
        self.waking = settled.woken;
        settled.fatal
    }

    fn into_parts(self) -> shutdown::Parts {
        shutdown::Parts {
            poll: self.poll,
            acceptor: self.acceptor,
            connections: self.connections,
            central: self.central,
            parking: self.parking,
            schedule: self.schedule,
            now: self.now,
        }
    }

    fn flush_touched(&mut self) {
        let mut keys = std::mem::take(&mut self.flushing);
        self.schedule.take_touched(&mut self.connections, &mut keys);
        for &key in &keys {
            if self.answer_unparked(key) {
                self.flush(key);
            }
        }
        keys.clear();
        self.flushing = keys;
    }

    /// Sends the WINNERS of a request the draw unparked this iteration, so
    /// that they go out in this flush. Answering them in the next iteration
    /// instead would sweep all the woken connections once more (a poll, a
    /// drive, a settle) before the first of them is written, while the
    /// agencies wait. The frames were encoded when the agency closed and go
    /// to the socket from there, behind any output already waiting. Only
    /// with nothing held: held replies wait for a commit (here, none is:
    /// this iteration's commit settled them all). Returns `false` if the
    /// connection was lost.
    fn answer_unparked(&mut self, key: usize) -> bool {
        let conn = &mut self.connections[key];
        if !conn.replies().is_empty() {
            return true;
        }
        while let Stage::Answering { agency, next } = conn.stage() {
            if conn.output_blocked() {
                break;
            }
            let pending = conn.pending_output();
            let (frames, next) =
                requests::next_winners(&self.central, conn.request_log(), agency, next, pending);
            conn.set_stage(next.map_or(Stage::Receiving, |next| Stage::Answering { agency, next }));
            if let Err(e) = conn.send(frames, self.now) {
                self.lost(key, &e);
                return false;
            }
        }
        true
    }

    /// Writes a connection's output, asks for WRITABLE only when bytes are
    /// left, and closes it when it has nothing more to do.
    fn flush(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        let was_blocked = conn.output_blocked();
        let all_sent = match conn.write(self.now) {
            Ok(all) => all,
            Err(e) => return self.lost(key, &e),
        };
        if let Err(e) = conn.want_writable(self.poll.registry(), Token(key), !all_sent) {
            return self.lost(key, &e);
        }
        if was_blocked && !conn.output_blocked() {
            self.schedule.enqueue(key, conn);
        }
        if all_sent && conn.finished() {
            self.close(key);
        }
    }

    /// A socket or TLS error ends the connection ([`CloseLog::lost`] logs it).
    fn lost(&mut self, key: usize, e: &io::Error) {
        self.close_log
            .lost(self.now, self.connections[key].peer(), e);
        self.close(key);
    }

    /// Where the loop removes a connection (the shutdown closes what is left
    /// its own way): out of the parked list, deregister, then drop. Entries
    /// naming it elsewhere go stale.
    fn close(&mut self, key: usize) {
        let mut conn = self.connections.remove(key);
        self.watch.closed(conn.traffic());
        self.parking.forget(&conn);
        conn.close_notify();
        conn.deregister(self.poll.registry());
        conn.log_closed();
    }
}

impl Server {
    fn accept_http(&mut self) {
        if let Some(http) = &mut self.http {
            http.accept(self.poll.registry(), self.now);
        }
    }

    /// Reads, answers and writes one observation connection; a snapshot
    /// is taken only when its request asks for one.
    fn serve_http(&mut self, token: Token) {
        let Some(http) = &mut self.http else {
            return;
        };
        let sources = Sources {
            central: &self.central,
            connections: &self.connections,
            parked: self.parking.len(),
            refused: self.acceptor.refused(),
            tls_handshakes_failed: self.close_log.handshakes_failed(),
            http_refused: http.refused(),
        };
        let watch = &self.watch;
        http.ready(token, self.poll.registry(), self.now, |route| {
            watch::render(route, || watch.snapshot(sources))
        });
    }
}

/// Binds the observation port on `ip` (`SERVER_IP`) and `port`.
fn bind_metrics(ip: &str, port: u16, registry: &mio::Registry) -> Result<Endpoint, StartError> {
    let fail = |error| {
        StartError::Listen(ListenError {
            address: format!("{ip}:{port}"),
            error,
        })
    };
    let address = crate::net::accept::resolve(ip, port).map_err(StartError::Listen)?;
    let endpoint = Endpoint::bind(address, registry, METRICS).map_err(fail)?;
    info!(
        "action: escuchar_metricas | result: success | address: {} | rutas: /metrics /status /",
        endpoint.local_addr()
    );
    Ok(endpoint)
}

/// Whether a request stages bets or a close (so waits while a commit is
/// under way).
fn stages(frame: &wire::Frame<'_>) -> bool {
    matches!(frame, wire::Frame::Batch { .. } | wire::Frame::Done { .. })
}

/// Encodes the next WINNERS frames of an answer under way (as many as the
/// output may hold) and moves the connection's stage on: still answering
/// from where it stopped, or back to receiving once the last frame is out.
fn answer_more(central: &Central, conn: &mut Connection, used: usize, agency: u32, next: usize) {
    let next = requests::answer_winners(central, &mut conn.requests(used), agency, next);
    conn.set_stage(next.map_or(Stage::Receiving, |next| Stage::Answering { agency, next }));
}
