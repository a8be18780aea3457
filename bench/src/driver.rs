//! The agencies on the wire: one thread, one mio loop, one connection each.
//!
//! A run has three phases. *Connect*: every agency opens its connection, a
//! bounded number at a time so the central's listen queue never overflows.
//! *Ingest*: every agency writes its pre-encoded batches, keeping up to
//! `window` of them unacknowledged, and each ACK is timed against the moment
//! its batch left; an agency whose batches are all stored sends DONE and then
//! parks a GET_WINNERS (wait=1). The last agency holds its DONE back.
//! *Draw*: once every other agency's GET_WINNERS is on the wire and a short
//! settle time has passed (so the central has read and parked them), the last
//! agency sends DONE, which triggers the draw, and asks too. The run ends
//! when every agency has its whole WINNERS list.
//!
//! Over TLS ([`DriverOptions::tls`]) the connect phase includes each
//! agency's handshake, with its own certificate: an agency counts as
//! connected when its handshake is done, so the ingest starts with every
//! session ready and measures the same thing over either transport. Each
//! agency's connect time (TCP connect, plus the handshake over TLS) is kept.
//!
//! Anything the protocol does not allow here (an ERROR, an ACK with the
//! wrong stored count, a wrong winners list, a closed connection) ends the
//! run with an error: the bench proves correctness as well as speed.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use indicatif::ProgressBar;
use lottery_proto::wire;
use lottery_proto::wire::reply::Reply;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::mtls::TlsAgencies;
use crate::transport::Transport;
use crate::workload::{AgencyLoad, Workload};

/// How the agencies behave.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    pub addr: SocketAddr,
    /// Batches an agency keeps in flight.
    pub window: usize,
    /// How long the last agency waits, after every other GET_WINNERS is
    /// written, before its DONE: time for the central to read and park them.
    pub settle: Duration,
    /// Connections being opened at once.
    pub max_connecting: usize,
    /// The whole run fails past this.
    pub timeout: Duration,
    /// The connect phase (every agency connected, and over TLS its
    /// handshake done) fails past this: a central that does not speak TLS
    /// would otherwise sit on a ClientHello until its idle timeout.
    pub connect_timeout: Duration,
    /// Mutual TLS, with each agency's own configuration; plain TCP without.
    pub tls: Option<TlsAgencies>,
}

/// Moments of a run at which the caller may look at the central.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Milestone {
    /// The last batch is acknowledged: every bet is durable.
    IngestEnd,
    /// Every agency but the last is parked; the last DONE goes next.
    AllParked,
    /// The last DONE's ACK is read: the draw is done and the wake-up of
    /// the parked agencies begins.
    LastDoneAcked,
    /// Every agency has read its whole WINNERS, before any connection is
    /// closed (the closes are the central's work after the wake-up).
    AllAnswered,
}

/// One acknowledged batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckSample {
    /// When the ACK arrived, in µs since the ingest started.
    pub at_us: u64,
    /// From the batch's last byte written to its ACK read, in µs.
    pub latency_us: u64,
    pub bets: u32,
}

/// What a run saw; turned into figures by [`crate::report`].
#[derive(Clone, Debug)]
pub struct Outcome {
    /// From the first connect to the last agency ready (handshake done over TLS).
    pub connect: Duration,
    /// Each agency's own: from its connect to its being ready, by agency index.
    pub handshakes: Vec<Duration>,
    pub ingest_start: Instant,
    /// The last batch ACK: every bet is durably stored.
    pub ingest_end: Instant,
    pub acks: Vec<AckSample>,
    pub bytes_sent: u64,
    /// When the last agency sent its DONE, and when its ACK arrived.
    pub last_done_sent: Instant,
    pub last_done_acked: Instant,
    /// When each agency's last WINNERS frame arrived, by agency index.
    pub winners_at: Vec<Instant>,
    /// GET_WINNERS asked again after a NOT_READY.
    pub reasks: u64,
    pub winners: u64,
    /// Time the driver sat waiting in `poll` from the last DONE to the end:
    /// the part of the wake-up the bench did not spend working itself.
    pub draw_poll_wait: Duration,
}

impl Outcome {
    /// The last WINNERS answer of all.
    pub fn last_winners(&self) -> Instant {
        self.winners_at
            .iter()
            .copied()
            .max()
            .unwrap_or(self.last_done_acked)
    }
}

/// Where one agency is in its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Connecting,
    /// TCP connected, the TLS handshake under way.
    Handshaking,
    /// Connected, waiting for the others before the ingest starts.
    Connected,
    Sending,
    /// The last agency: every batch stored, DONE held back.
    Holding,
    /// DONE sent, its ACK awaited.
    Closing,
    /// GET_WINNERS sent, WINNERS frames arriving.
    Asking,
    Finished,
}

/// One agency's connection and progress.
struct Session {
    stream: Transport,
    stage: Stage,
    connect_started: Instant,
    /// From `connect_started` to ready.
    handshake: Duration,
    /// Bytes of the agency's batches written so far.
    written: usize,
    /// Batches whose last byte is written.
    sent: usize,
    acked: usize,
    /// When each sent, unacknowledged batch left, oldest first.
    sent_at: VecDeque<Instant>,
    /// DONE and GET_WINNERS frames, and how much of them is written.
    control: Vec<u8>,
    control_written: usize,
    /// Bytes received and not yet decoded start at `input_start`.
    input: Vec<u8>,
    input_start: usize,
    /// Documents of the WINNERS frames received so far.
    winners: Vec<String>,
    /// Whether this agency's first GET_WINNERS is wholly written.
    asked: bool,
}

impl Session {
    fn new(stream: Transport, connect_started: Instant) -> Session {
        Session {
            stream,
            stage: Stage::Connecting,
            connect_started,
            handshake: Duration::ZERO,
            written: 0,
            sent: 0,
            acked: 0,
            sent_at: VecDeque::new(),
            control: Vec::new(),
            control_written: 0,
            input: Vec::with_capacity(1 << 14),
            input_start: 0,
            winners: Vec::new(),
            asked: false,
        }
    }

    /// Writes whatever may go now: batches within the window, then control
    /// frames. Stops at `WouldBlock`; the rest waits for WRITABLE.
    fn flush(&mut self, load: &AgencyLoad, window: usize) -> io::Result<()> {
        self.stream.flush_pending()?;
        loop {
            let result = if self.control_written < self.control.len() {
                self.stream.write(&self.control[self.control_written..])
            } else if self.stage == Stage::Sending
                && self.sent < load.batches()
                && self.sent < self.acked + window
            {
                let limit = load.batch_ends[(self.acked + window).min(load.batches()) - 1];
                self.stream.write(&load.bytes[self.written..limit])
            } else {
                if self.stage == Stage::Asking && !self.control.is_empty() {
                    self.asked = true;
                }
                return Ok(());
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) if self.control_written < self.control.len() => self.control_written += n,
                Ok(n) => {
                    self.written += n;
                    let now = Instant::now();
                    while self.sent < load.batches() && load.batch_ends[self.sent] <= self.written {
                        self.sent_at.push_back(now);
                        self.sent += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads until `WouldBlock`. `Ok(false)` means the central closed.
    ///
    /// A short read means the socket is empty for now, and on Linux any byte
    /// arriving later raises a new edge, so the read that would only say
    /// `WouldBlock` is skipped: it halves the reads when 10,000 parked
    /// agencies are woken at once. Unless the central already hung up
    /// (`closing`), as no new edge would then come for its FIN, or the
    /// transport is TLS, whose short read says nothing about the socket.
    fn fill(&mut self, closing: bool) -> io::Result<bool> {
        let mut chunk = [0u8; 1 << 14];
        let short_read_drains = self.stream.short_read_drains() && !closing;
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() && short_read_drains {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn queue_control(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        self.control.drain(..self.control_written);
        self.control_written = 0;
        encode(&mut self.control);
    }
}

/// The whole run's state.
struct Run<'w> {
    opts: DriverOptions,
    workload: &'w Workload,
    sessions: Vec<Session>,
    ingest_start: Instant,
    acks: Vec<AckSample>,
    acked_bets: u64,
    batches_left: u64,
    ingest_end: Option<Instant>,
    /// Agencies other than the last whose GET_WINNERS is written.
    parked: usize,
    all_parked_at: Option<Instant>,
    last_done_sent: Option<Instant>,
    last_done_acked: Option<Instant>,
    winners_at: Vec<Option<Instant>>,
    finished: usize,
    reasks: u64,
    draw_poll_wait: Duration,
}

/// Plays every agency of `workload` against the central at `opts.addr`.
/// `on_milestone` runs as the run reaches each [`Milestone`], so the caller
/// can read the central's state at that moment.
pub fn run(
    opts: &DriverOptions,
    workload: &Workload,
    progress: Option<&ProgressBar>,
    mut on_milestone: impl FnMut(Milestone),
) -> Result<Outcome> {
    let agencies = workload.agencies.len();
    ensure!(agencies > 0, "no agencies to play");
    ensure!(opts.window > 0, "the window must hold at least one batch");
    if let Some(tls) = &opts.tls {
        ensure!(
            tls.configs.len() >= agencies,
            "{} TLS configurations for {agencies} agencies",
            tls.configs.len()
        );
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let started = Instant::now();
    let deadline = started + opts.timeout;

    let connect_deadline = deadline.min(started + opts.connect_timeout);
    let sessions = connect_all(&mut poll, &mut events, opts, agencies, connect_deadline)?;
    let connect = started.elapsed();
    let handshakes = sessions.iter().map(|s| s.handshake).collect();

    let mut run = Run {
        opts: opts.clone(),
        workload,
        sessions,
        ingest_start: Instant::now(),
        acks: Vec::with_capacity(workload.total_batches() as usize),
        acked_bets: 0,
        batches_left: workload.total_batches(),
        ingest_end: None,
        parked: 0,
        all_parked_at: None,
        last_done_sent: None,
        last_done_acked: None,
        winners_at: vec![None; agencies],
        finished: 0,
        reasks: 0,
        draw_poll_wait: Duration::ZERO,
    };
    for i in 0..agencies {
        run.sessions[i].stage = Stage::Sending;
        run.advance(i)?;
        run.flush(i)?;
    }
    let mut last_progress = Instant::now();
    let mut ingest_reported = false;
    let mut last_ack_reported = false;
    while run.finished < agencies {
        let now = Instant::now();
        if now > deadline {
            bail!(
                "the run took longer than {:?}: {}",
                opts.timeout,
                run.describe_stuck()
            );
        }
        let waiting = Instant::now();
        poll_once(&mut poll, &mut events, Duration::from_millis(20))?;
        if run.last_done_sent.is_some() {
            run.draw_poll_wait += waiting.elapsed();
        }
        // Every ready agency's replies are read (and each ACK stamped)
        // before any of them writes: an ACK read after the writes of the
        // agencies ahead of it in this wake-up would be stamped late by the
        // bench's own work, not the central's.
        for event in events.iter() {
            let i = event.token().0;
            if i >= agencies {
                continue;
            }
            let closing = event.is_read_closed() || event.is_error();
            if event.is_readable() || closing {
                run.receive(i, closing)?;
            }
        }
        for event in events.iter() {
            let i = event.token().0;
            if i < agencies {
                run.flush(i)?;
            }
        }
        if run.ingest_end.is_some() && !ingest_reported {
            on_milestone(Milestone::IngestEnd);
            ingest_reported = true;
        }
        run.maybe_release_last(&mut on_milestone)?;
        if run.last_done_acked.is_some() && !last_ack_reported {
            on_milestone(Milestone::LastDoneAcked);
            last_ack_reported = true;
        }
        if let Some(bar) = progress
            && last_progress.elapsed() >= Duration::from_millis(100)
        {
            bar.set_position(run.acked_bets);
            let seconds = run.ingest_start.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{:.2} M bets/s",
                run.acked_bets as f64 / seconds / 1e6
            ));
            last_progress = Instant::now();
        }
    }
    on_milestone(Milestone::AllAnswered);
    if let Some(bar) = progress {
        bar.set_position(run.acked_bets);
    }
    let ingest_end = run
        .ingest_end
        .ok_or_else(|| anyhow!("no batch was acknowledged"))?;
    let last_done_sent = run
        .last_done_sent
        .ok_or_else(|| anyhow!("the last DONE was never sent"))?;
    let last_done_acked = run
        .last_done_acked
        .ok_or_else(|| anyhow!("the last DONE was never acknowledged"))?;
    Ok(Outcome {
        connect,
        handshakes,
        ingest_start: run.ingest_start,
        ingest_end,
        acks: run.acks,
        bytes_sent: workload.total_bytes(),
        last_done_sent,
        last_done_acked,
        winners_at: run
            .winners_at
            .into_iter()
            .map(|t| t.expect("finished"))
            .collect(),
        reasks: run.reasks,
        winners: workload.total_winners(),
        draw_poll_wait: run.draw_poll_wait,
    })
}

/// Opens one connection per agency (and over TLS completes its handshake),
/// at most `max_connecting` pending at once.
fn connect_all(
    poll: &mut Poll,
    events: &mut Events,
    opts: &DriverOptions,
    agencies: usize,
    deadline: Instant,
) -> Result<Vec<Session>> {
    let mut sessions: Vec<Session> = Vec::with_capacity(agencies);
    let mut pending = 0;
    let mut connected = 0;
    while connected < agencies {
        while pending < opts.max_connecting.max(1) && sessions.len() < agencies {
            let i = sessions.len();
            let connect_started = Instant::now();
            let mut stream = TcpStream::connect(opts.addr)
                .with_context(|| format!("agency {}: connecting to {}", i + 1, opts.addr))?;
            poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let tls = opts
                .tls
                .as_ref()
                .map(|t| (t.configs[i].clone(), t.server_name.clone()));
            let stream = Transport::new(stream, tls)
                .with_context(|| format!("agency {}: starting TLS", i + 1))?;
            sessions.push(Session::new(stream, connect_started));
            pending += 1;
        }
        if Instant::now() > deadline {
            let handshaking = sessions
                .iter()
                .filter(|s| s.stage == Stage::Handshaking)
                .count();
            if opts.tls.is_some() {
                bail!(
                    "only {connected} of {agencies} agencies connected and finished their TLS handshake in time ({handshaking} still in it): does the central serve TLS (TLS_CERT, TLS_KEY, TLS_CLIENT_CA)?"
                );
            }
            bail!("only {connected} of {agencies} agencies connected in time");
        }
        poll_once(poll, events, Duration::from_millis(100))?;
        for event in events.iter() {
            let i = event.token().0;
            let Some(session) = sessions.get_mut(i) else {
                continue;
            };
            if session.stage == Stage::Connecting {
                if let Some(e) = session.stream.socket().take_error()? {
                    bail!("agency {}: cannot connect to {}: {e}", i + 1, opts.addr);
                }
                match session.stream.socket().peer_addr() {
                    Ok(_) => {
                        session.stream.socket().set_nodelay(true)?;
                        session.stage = Stage::Handshaking;
                    }
                    // Not yet: a spurious wake-up before the TCP handshake ends.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => bail!("agency {}: cannot connect to {}: {e}", i + 1, opts.addr),
                }
            }
            if session.stage == Stage::Handshaking {
                let ready = session.stream.handshake().with_context(|| {
                    format!("agency {}: TLS handshake with {}", i + 1, opts.addr)
                })?;
                if ready {
                    session.handshake = session.connect_started.elapsed();
                    session.stage = Stage::Connected;
                    pending -= 1;
                    connected += 1;
                }
            }
        }
    }
    Ok(sessions)
}

impl Run<'_> {
    fn agency(&self, i: usize) -> u32 {
        self.workload.agencies[i].agency
    }

    fn is_last(&self, i: usize) -> bool {
        i + 1 == self.sessions.len()
    }

    fn flush(&mut self, i: usize) -> Result<()> {
        let session = &mut self.sessions[i];
        let was_asked = session.asked;
        session
            .flush(&self.workload.agencies[i], self.opts.window)
            .with_context(|| {
                format!(
                    "agency {}: writing to the central",
                    self.workload.agencies[i].agency
                )
            })?;
        if session.asked && !was_asked {
            // An agency's connection, after its requests and replies, is in
            // the kernel's interactive mode, which holds back the ACK of
            // what it reads in the hope of a reply to carry it. The timers
            // that send those ACKs for the WINNERS can then expire on the
            // central's CPU, one per agency, inside the wake-up being
            // measured. Real agencies send them from their own machines, and
            // the floor's readers, on fresh connections, ACK at once: so do
            // the agencies once they ask.
            rustix::net::sockopt::set_tcp_quickack(session.stream.socket(), true).with_context(
                || format!("agency {}: TCP_QUICKACK", self.workload.agencies[i].agency),
            )?;
            if !self.is_last(i) {
                self.parked += 1;
            }
        }
        Ok(())
    }

    /// Reads what the central sent to agency `i` and acts on every whole frame.
    fn receive(&mut self, i: usize, closing: bool) -> Result<()> {
        let agency = self.agency(i);
        let open = self.sessions[i]
            .fill(closing)
            .with_context(|| format!("agency {agency}: reading from the central"))?;
        loop {
            let session = &mut self.sessions[i];
            let buffered = &session.input[session.input_start..];
            let (frame, n) = match wire::decode(buffered) {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(e) => bail!("agency {agency}: the central sent a broken frame: {e}"),
            };
            let reply = Reply::from_frame(&frame).map_err(|kind| {
                anyhow!("agency {agency}: the central sent a request frame (type {kind:#04x})")
            })?;
            session.input_start += n;
            self.on_reply(i, reply)?;
        }
        let session = &mut self.sessions[i];
        session.input.drain(..session.input_start);
        session.input_start = 0;
        if !open && self.sessions[i].stage != Stage::Finished {
            bail!(
                "agency {agency}: the central closed the connection ({:?})",
                self.sessions[i].stage
            );
        }
        Ok(())
    }

    fn on_reply(&mut self, i: usize, reply: Reply) -> Result<()> {
        let agency = self.agency(i);
        let is_last = self.is_last(i);
        let load = &self.workload.agencies[i];
        let session = &mut self.sessions[i];
        match (session.stage, reply) {
            (
                _,
                Reply::Error {
                    code,
                    raw_code,
                    detail,
                    message,
                },
            ) => {
                let name = code.map_or(format!("unknown {raw_code}"), |c| c.name().to_string());
                bail!(
                    "agency {agency}: ERROR {name} detail {detail}: {message} ({:?})",
                    session.stage
                )
            }
            (Stage::Sending, Reply::Ack { agency: a, stored }) => {
                let now = Instant::now();
                let b = session.acked;
                ensure!(
                    b < session.sent,
                    "agency {agency}: an ACK for a batch not sent"
                );
                ensure!(
                    a == agency && stored == load.stored_after[b],
                    "agency {agency}: batch {b} acknowledged as agency {a} stored {stored}, expected {}",
                    load.stored_after[b]
                );
                let sent_at = session
                    .sent_at
                    .pop_front()
                    .expect("a sent batch has a send time");
                session.acked += 1;
                let bets = stored - if b == 0 { 0 } else { load.stored_after[b - 1] };
                self.acks.push(AckSample {
                    at_us: now.duration_since(self.ingest_start).as_micros() as u64,
                    latency_us: now.duration_since(sent_at).as_micros() as u64,
                    bets,
                });
                self.acked_bets += u64::from(bets);
                self.batches_left -= 1;
                if self.batches_left == 0 {
                    self.ingest_end = Some(now);
                }
                self.advance(i)?;
            }
            (Stage::Closing, Reply::Ack { agency: a, stored }) => {
                ensure!(
                    a == agency && stored == load.bets,
                    "agency {agency}: DONE acknowledged as agency {a} stored {stored}, expected {}",
                    load.bets
                );
                if is_last {
                    self.last_done_acked = Some(Instant::now());
                }
                session.stage = Stage::Asking;
                session.queue_control(|out| wire::encode_get_winners(out, agency, true));
            }
            (Stage::Asking, Reply::NotReady { .. }) => {
                // The park timed out before the draw: ask again.
                self.reasks += 1;
                session.queue_control(|out| wire::encode_get_winners(out, agency, true));
            }
            (
                Stage::Asking,
                Reply::Winners {
                    agency: a,
                    total,
                    last,
                    documents,
                },
            ) => {
                ensure!(a == agency, "agency {agency}: got agency {a}'s winners");
                session.winners.extend(documents);
                if last {
                    ensure!(
                        session.winners.len() == total as usize,
                        "agency {agency}: WINNERS total {total} but {} documents",
                        session.winners.len()
                    );
                    ensure!(
                        session.winners == load.winners,
                        "agency {agency}: {} winners {:?}, expected {} {:?}",
                        session.winners.len(),
                        abbreviate(&session.winners),
                        load.winners.len(),
                        abbreviate(&load.winners)
                    );
                    session.stage = Stage::Finished;
                    self.winners_at[i] = Some(Instant::now());
                    self.finished += 1;
                }
            }
            (stage, reply) => bail!("agency {agency}: unexpected {reply:?} while {stage:?}"),
        }
        Ok(())
    }

    /// Moves agency `i` on once its batches are all stored.
    fn advance(&mut self, i: usize) -> Result<()> {
        let agency = self.agency(i);
        let load = &self.workload.agencies[i];
        let last = self.is_last(i);
        let session = &mut self.sessions[i];
        if session.stage == Stage::Sending && session.acked == load.batches() {
            if last {
                session.stage = Stage::Holding;
            } else {
                session.stage = Stage::Closing;
                let total = load.bets;
                session.queue_control(|out| wire::encode_done(out, agency, total));
            }
        }
        Ok(())
    }

    /// Sends the last DONE once every other agency is parked and settled.
    fn maybe_release_last(&mut self, on_milestone: &mut impl FnMut(Milestone)) -> Result<()> {
        let last = self.sessions.len() - 1;
        if self.sessions[last].stage != Stage::Holding || self.parked < last {
            return Ok(());
        }
        let since = *self.all_parked_at.get_or_insert_with(Instant::now);
        if since.elapsed() < self.opts.settle {
            return Ok(());
        }
        on_milestone(Milestone::AllParked);
        let agency = self.agency(last);
        let total = self.workload.agencies[last].bets;
        let session = &mut self.sessions[last];
        session.stage = Stage::Closing;
        session.queue_control(|out| wire::encode_done(out, agency, total));
        self.last_done_sent = Some(Instant::now());
        self.flush(last)
    }

    fn describe_stuck(&self) -> String {
        let mut counts = std::collections::BTreeMap::new();
        for s in &self.sessions {
            *counts.entry(format!("{:?}", s.stage)).or_insert(0u32) += 1;
        }
        format!(
            "agencies by stage {counts:?}, {} bets acknowledged",
            self.acked_bets
        )
    }
}

/// One wait for events; a signal that cuts it short is no error.
fn poll_once(poll: &mut Poll, events: &mut Events, timeout: Duration) -> io::Result<()> {
    match poll.poll(events, Some(timeout)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        other => other,
    }
}

fn abbreviate(docs: &[String]) -> String {
    if docs.len() <= 6 {
        format!("{docs:?}")
    } else {
        format!("{:?}..", &docs[..6])
    }
}
