//! The agency's conversation with the central (`docs/protocol.md`): send the bet
//! stream in batches with several in flight, close it with DONE, ask for the
//! winners; reconnect and resume whenever the connection is lost.
//!
//! The one piece of state that survives a connection is [`Agency::stored`],
//! the central's durable count of this agency's bets as last heard. Every
//! new connection resends from there, and the protocol makes that safe: a
//! batch the central already holds is acknowledged again and stored once,
//! and its ACK (or an OUT_OF_ORDER, or a MISSING_BETS) tells the real count.
//! So no bet is ever skipped and none is stored twice, whatever the central
//! does with connections.
//!
//! A central that holds fewer bets than it (or another central of the same
//! store) acknowledged has lost acknowledged bets: that is logged as a
//! failure (`apuestas_perdidas`), loudly, and the agency sends them again
//! from the lower count, since it holds every bet and the lottery needs them.
//!
//! What comes back decides what happens (see [`Agency::refusal`]): a lost
//! connection, SHUTTING_DOWN or STORAGE means "reconnect and resume" (within
//! the retry budget of [`Retry`]; to the next address of `server.address`
//! when [`Centrals`] says so); a rejected bet or agency is the agency's
//! own input being wrong (exit 2); a TLS refusal (a certificate either side
//! refuses, a central that speaks TLS to a plain agency or the reverse) is
//! the deployment's TLS setup being wrong (exit 2, no retry: the same
//! certificates get the same answer); anything outside the protocol is the
//! central's fault (exit 1).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use lottery_proto::wire::{self, ErrorCode, MAX_FRAME};

use crate::batch::{self, Batch};
use crate::bets::Bets;
use crate::centrals::{Cause, Centrals};
use crate::config::{Config, WinnersMode};
use crate::connection::{ConnError, Connection, Reply};
use crate::logfmt::clean;
use crate::not_ready::NotReadyPause;
use crate::pacing::Pacing;
use crate::progress::Progress;
use crate::retry::{GiveUp, Retry};
use crate::stop::Stop;
use crate::transport::Tls;

/// How often `CLI_WINNERS_MODE=poll` asks for the winners.
pub const POLL_PERIOD: Duration = Duration::from_millis(100);
/// The least wait after `ERROR STORAGE`: the central could not write, and
/// asking again at once would most likely fail the same way.
const STORAGE_BACKOFF: Duration = Duration::from_millis(200);
/// The longest one connection attempt may take (a central that drops SYNs
/// must not eat the whole retry budget in one go).
const CONNECT_ATTEMPT: Duration = Duration::from_secs(2);

/// How a run that was not a failure ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The draw happened and these are the agency's winning documents.
    Winners {
        documents: Vec<String>,
        /// False when the central had closed this agency with another
        /// number of bets than this agency holds (a previous run's).
        all_stored: bool,
    },
    /// A stop signal arrived; `stored` bets were acknowledged by then.
    Stopped { signal: &'static str, stored: usize },
}

/// Why a run failed; it has already been logged when [`Agency::run`] returns it.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The central rejected this agency's input (a bet, its number): exit 2.
    Rejected(String),
    /// The central could not be reached in time or broke the protocol: exit 1.
    Central(String),
    /// TLS was refused by either side (certificates, CA, names, or TLS on
    /// one side only): exit 2, a configuration to fix.
    Tls(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Rejected(_) | Failure::Tls(_) => 2,
            Failure::Central(_) => 1,
        }
    }
}

/// Where the agency is in its stream, across connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Bets are being sent, or DONE is not acknowledged yet.
    Sending,
    /// The central closed the agency (DONE acknowledged): only winners are left.
    Closed,
}

/// Why a conversation on one connection ended early.
#[derive(Debug)]
enum Interrupt {
    /// Reconnect (after at least `at_least`) and resume.
    Lost {
        why: String,
        at_least: Duration,
        cause: Cause,
    },
    Stopped,
    Failed(Failure),
}

impl From<ConnError> for Interrupt {
    fn from(e: ConnError) -> Interrupt {
        match e {
            ConnError::Lost(why) => Interrupt::Lost {
                why,
                at_least: Duration::ZERO,
                cause: Cause::Lost,
            },
            ConnError::Stopped => Interrupt::Stopped,
            ConnError::Garbled(why) => Interrupt::Failed(Failure::Central(why)),
            ConnError::Refused(why) => Interrupt::Failed(Failure::Tls(why)),
        }
    }
}

pub struct Agency<'a> {
    config: &'a Config,
    bets: &'a Bets,
    stop: &'a Stop,
    /// Mutual TLS to the central, or `None` for plain TCP.
    tls: Option<&'a Tls>,
    retry: Retry,
    /// The central's addresses and the one in use.
    centrals: Centrals,
    /// `loop.period`: a pause after each answer before the next step.
    pacing: Pacing,
    /// What a person watching the run sees of its progress.
    progress: Progress,
    /// The central's durable count of this agency's bets, as last heard.
    stored: usize,
    stage: Stage,
    /// Whether the central holds exactly this agency's stream.
    all_stored: bool,
    /// Log `apuesta_enviada` for each acknowledged bet (the single-bet mode).
    announce_each_bet: bool,
    /// How many bets `apuesta_enviada` has been logged for.
    announced: usize,
    /// Whether the frame limit's cut of a batch was logged (it is, once).
    frame_cut_logged: bool,
    /// The last NOT_READY seen, so only changes are logged at INFO.
    last_not_ready: Option<(u32, u32)>,
    /// Whether waiting for the draw was logged (it is, once).
    waiting_logged: bool,
    /// The pause after a parked request came back NOT_READY early; kept
    /// across connections, so a central that closes after each answer
    /// is not asked in a loop either.
    not_ready_pause: NotReadyPause,
    /// Why the last attempt failed, for the message when the budget runs out.
    last_loss: String,
    /// The first position of the stream the central would refuse today (a
    /// birthdate after today): bets are sent up to it, and no DONE.
    held_from: Option<usize>,
}

impl<'a> Agency<'a> {
    pub fn new(
        config: &'a Config,
        bets: &'a Bets,
        stop: &'a Stop,
        announce_each_bet: bool,
    ) -> Self {
        Agency {
            config,
            bets,
            stop,
            tls: None,
            retry: Retry::new(config.connect_timeout),
            centrals: Centrals::new(config.server_addresses.clone(), config.storage_errors),
            pacing: Pacing::new(config.loop_period),
            progress: Progress::hidden(),
            stored: 0,
            stage: Stage::Sending,
            all_stored: true,
            announce_each_bet,
            announced: 0,
            frame_cut_logged: false,
            last_not_ready: None,
            waiting_logged: false,
            not_ready_pause: NotReadyPause::new(config.park_timeout),
            last_loss: String::new(),
            held_from: None,
        }
    }

    /// Sends only the bets before `position` (see `bets_file::Loaded::held_from`):
    /// the run then ends with exit 2 and the agency left open, so a run on
    /// a later day resumes at `position` with nothing shifted.
    pub fn hold_from(mut self, position: Option<usize>) -> Self {
        self.held_from = position;
        self
    }

    /// Speaks mutual TLS to the central (`None`: plain TCP).
    pub fn over(mut self, tls: Option<&'a Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// Shows the run's progress there (the default shows nothing).
    pub fn showing(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Where today's sending ends.
    fn sendable(&self) -> usize {
        self.held_from
            .unwrap_or(self.bets.len())
            .min(self.bets.len())
    }

    /// Runs the agency to its winners, a stop signal, or a failure.
    pub fn run(mut self) -> Result<Outcome, Failure> {
        let mut connected_before = false;
        loop {
            match self.retry.wait(self.stop) {
                Ok(()) => {}
                Err(GiveUp::Stopped) => return Ok(self.stopped()),
                Err(GiveUp::Exhausted { failures, waited }) => {
                    let why = format!(
                        "no answer from the central at {} for {} ms ({failures} attempts), last: {}",
                        self.centrals.all(),
                        waited.as_millis(),
                        self.last_loss
                    );
                    error!(
                        "action: conectar | result: fail | servidor: {} | motivo: {}",
                        clean(&self.centrals.all()),
                        clean(&why)
                    );
                    return Err(Failure::Central(why));
                }
            }
            let timeout = self
                .retry
                .remaining()
                .clamp(Duration::from_millis(10), CONNECT_ATTEMPT);
            let address = self.centrals.current().to_string();
            // Each central's certificate must name its own host.
            let tls = match self.tls.map(|tls| tls.toward(&address)).transpose() {
                Ok(tls) => tls,
                Err(e) => return Err(self.fail(Failure::Tls(e.to_string()))),
            };
            let opened = Connection::open(
                &address,
                timeout,
                self.config.reply_timeout,
                tls.as_ref(),
                self.stop,
            );
            let mut conn = match opened {
                Ok(conn) => conn,
                Err(ConnError::Lost(why)) => {
                    self.lost(
                        format!("cannot connect: {why}"),
                        Duration::ZERO,
                        Cause::Unreachable,
                    );
                    continue;
                }
                Err(e) => match Interrupt::from(e) {
                    Interrupt::Stopped => return Ok(self.stopped()),
                    Interrupt::Failed(failure) => return Err(self.fail(failure)),
                    Interrupt::Lost { .. } => unreachable!("handled above"),
                },
            };
            debug!(
                "action: conectar | result: success | servidor: {} | desde: {}",
                clean(&address),
                self.stored
            );
            if connected_before {
                self.progress.reconnected();
            }
            connected_before = true;
            match self.converse(&mut conn) {
                Ok(documents) => {
                    return Ok(Outcome::Winners {
                        documents,
                        all_stored: self.all_stored,
                    });
                }
                Err(Interrupt::Lost {
                    why,
                    at_least,
                    cause,
                }) => self.lost(why, at_least, cause),
                Err(Interrupt::Stopped) => return Ok(self.stopped()),
                Err(Interrupt::Failed(failure)) => return Err(self.fail(failure)),
            }
        }
    }

    /// Logs why the run fails.
    fn fail(&self, failure: Failure) -> Failure {
        match &failure {
            Failure::Rejected(why) | Failure::Central(why) => error!(
                "action: {} | result: fail | motivo: {}",
                self.action(),
                clean(why)
            ),
            Failure::Tls(why) => error!(
                "action: conectar | result: fail | servidor: {} | tls: {} | motivo: {}",
                clean(self.centrals.current()),
                if self.tls.is_some() { "mutual" } else { "none" },
                clean(why)
            ),
        }
        failure
    }

    fn stopped(&self) -> Outcome {
        Outcome::Stopped {
            signal: self.stop.requested().unwrap_or("signal"),
            stored: self.stored,
        }
    }

    /// The log action of the current stage, for failures.
    fn action(&self) -> &'static str {
        match self.stage {
            Stage::Sending => "apuestas_enviadas",
            Stage::Closed => "consulta_ganadores",
        }
    }

    /// Records a failed attempt. A retry right after progress is routine (a
    /// central may close every connection after one reply), so only a streak
    /// of failures is worth an INFO line; a move to another central always is.
    fn lost(&mut self, why: String, at_least: Duration, cause: Cause) {
        let answered_since = self.retry.failures() == 0;
        self.retry.failed(at_least);
        let failures = self.retry.failures();
        let line = format!(
            "action: conectar | result: in_progress | servidor: {} | intentos: {failures} | espera_ms: {} | motivo: {}",
            clean(self.centrals.current()),
            self.retry.delay().as_millis(),
            clean(&why)
        );
        if failures == 2 || failures.is_multiple_of(10) {
            info!("{line}");
        } else {
            debug!("{line}");
        }
        if let Some(to) = self.centrals.failed(cause, answered_since) {
            self.progress.moved();
            let why = match cause {
                Cause::Storage => format!(
                    "{} ERROR STORAGE in a row, last: {why}",
                    self.centrals.storage_limit()
                ),
                _ => why.clone(),
            };
            info!(
                "action: cambiar_central | result: in_progress | desde: {} | hacia: {} | stored: {} | motivo: {}",
                clean(&to.from),
                clean(&to.to),
                self.stored,
                clean(&why)
            );
        }
        self.last_loss = why;
    }

    /// One connection's worth of the conversation, from wherever the agency is.
    fn converse(&mut self, conn: &mut Connection<'_>) -> Result<Vec<String>, Interrupt> {
        loop {
            match self.stage {
                Stage::Sending => {
                    self.send_bets(conn)?;
                    if self.stage == Stage::Sending {
                        self.close(conn)?;
                    }
                }
                Stage::Closed => return self.ask_winners(conn),
            }
        }
    }

    /// Sends the stream from `stored` on, keeping up to `window` batches in
    /// flight, until the central holds all of it (or says the agency is closed).
    fn send_bets(&mut self, conn: &mut Connection<'_>) -> Result<(), Interrupt> {
        let total = self.bets.len();
        let sendable = self.sendable();
        let mut in_flight: VecDeque<Batch> = VecDeque::new();
        let mut next = self.stored;
        // Each connection starts with one batch in flight and opens the
        // window one batch per ACK: the first ACK tells what the central
        // really stored (maybe more than was heard before the connection
        // was lost), and a central that answers one request per connection
        // is not sent batches it will never read.
        let mut window = 1;
        // The course's `loop.period`: one batch at a time, each a period
        // after the answer to the one before (the pause paces the stream).
        let max_window = match self.pacing.period() {
            Some(_) => 1,
            None => self.config.window,
        };
        // The central's count from an OUT_OF_ORDER, applied once the
        // batches behind the refused one have been answered (the same way).
        let mut rewind: Option<usize> = None;
        let mut closed = false;
        let mut out = Vec::with_capacity(MAX_FRAME);
        loop {
            if rewind.is_none() && !closed {
                while in_flight.len() < window && next < sendable {
                    if !self.pacing.step(self.stop) {
                        return Err(Interrupt::Stopped);
                    }
                    let most = self.config.batch_max_amount.min(sendable - next);
                    let batch = batch::plan(self.bets, next, most);
                    self.note_frame_cut(batch);
                    out.clear();
                    batch::encode(&mut out, self.config.id, self.bets, batch);
                    conn.send(&out)?;
                    in_flight.push_back(batch);
                    next = batch.end();
                    self.progress.sent(next);
                }
            }
            let Some(batch) = in_flight.pop_front() else {
                if closed {
                    self.stage = Stage::Closed;
                    return Ok(());
                }
                if let Some(stored) = rewind.take() {
                    self.resume_from(stored, "OUT_OF_ORDER");
                    next = self.stored;
                    window = 1;
                    continue;
                }
                return Ok(());
            };
            match conn.recv()? {
                Reply::Ack { agency, stored } => {
                    self.check_agency(agency)?;
                    let stored = stored as usize;
                    if stored < batch.end() || stored > total {
                        return Err(protocol(format!(
                            "ACK of bets {}..{} says {stored} stored, of a stream of {total}",
                            batch.first,
                            batch.end()
                        )));
                    }
                    self.retry.progress();
                    debug!(
                        "action: batch_enviado | result: success | first: {} | cantidad: {} | stored: {stored}",
                        batch.first, batch.count
                    );
                    self.acknowledge(stored);
                    next = next.max(stored);
                    window = (window + 1).min(max_window);
                }
                Reply::Error {
                    code: Some(ErrorCode::OutOfOrder),
                    detail,
                    ..
                } => {
                    if detail as usize >= batch.first {
                        return Err(protocol(format!(
                            "OUT_OF_ORDER for a batch at {} with {detail} stored",
                            batch.first
                        )));
                    }
                    self.retry.progress();
                    rewind = Some(detail as usize);
                }
                Reply::Error {
                    code: Some(ErrorCode::AgencyClosed),
                    detail,
                    ..
                } => {
                    self.retry.progress();
                    if !closed {
                        self.closed_before(detail as usize);
                    }
                    closed = true;
                }
                other => return Err(self.refusal(other, "BATCH", Some(batch))),
            }
        }
    }

    /// Sends DONE; the central either closes the agency or says from where
    /// bets are missing.
    fn close(&mut self, conn: &mut Connection<'_>) -> Result<(), Interrupt> {
        let total = self.bets.len();
        if self.stored < total
            && let Some(held) = self.held_from
        {
            // DONE now would close the agency without the held bets, for
            // good: stop here, open, with everything before them stored.
            let bet = self.bets.get(held);
            return Err(Interrupt::Failed(Failure::Rejected(format!(
                "bet {held} of the stream (dni {}) is born after today, so the central refuses it until then; the {} bets before it are stored and the {} from it on are not sent: the agency is not closed, run it again on that day or fix the row",
                bet.document,
                self.stored,
                total - self.stored
            ))));
        }
        if !self.pacing.step(self.stop) {
            return Err(Interrupt::Stopped);
        }
        let mut out = Vec::new();
        wire::encode_done(&mut out, self.config.id, batch::to_u32(total));
        conn.send(&out)?;
        match conn.recv()? {
            Reply::Ack { agency, stored } => {
                self.check_agency(agency)?;
                if stored as usize != total {
                    return Err(protocol(format!(
                        "ACK of DONE with {total} bets says {stored} stored"
                    )));
                }
                self.retry.progress();
                self.acknowledge(total);
                self.stage = Stage::Closed;
                info!("action: apuestas_enviadas | result: success | cantidad: {total}");
            }
            Reply::Error {
                code: Some(ErrorCode::MissingBets),
                detail,
                ..
            } => {
                if detail as usize >= total {
                    return Err(protocol(format!(
                        "MISSING_BETS with {detail} stored of a stream of {total}"
                    )));
                }
                self.retry.progress();
                self.resume_from(detail as usize, "MISSING_BETS");
            }
            Reply::Error {
                code: Some(ErrorCode::AgencyClosed),
                detail,
                ..
            } => {
                self.retry.progress();
                self.closed_before(detail as usize);
                self.stage = Stage::Closed;
            }
            other => return Err(self.refusal(other, "DONE", None)),
        }
        Ok(())
    }

    /// Asks for the winners until the draw has happened and the whole list
    /// has arrived.
    fn ask_winners(&mut self, conn: &mut Connection<'_>) -> Result<Vec<String>, Interrupt> {
        self.progress.waiting_for_draw();
        let wait = self.config.winners_mode == WinnersMode::Wait;
        if !self.pacing.step(self.stop) {
            return Err(Interrupt::Stopped);
        }
        let mut out = Vec::new();
        wire::encode_get_winners(&mut out, self.config.id, wait);
        loop {
            conn.send(&out)?;
            let asked = Instant::now();
            // A parked request may wait long for the other agencies: say
            // so once, so a quiet agency does not look hung.
            if wait && !self.waiting_logged {
                self.waiting_logged = true;
                info!(
                    "action: consulta_ganadores | result: in_progress | motivo: waiting for the draw"
                );
            }
            let mut documents: Vec<String> = Vec::new();
            let mut list_total: Option<u32> = None;
            // A parked request is answered within the central's park timeout.
            let mut limit = if wait {
                self.config.park_timeout + self.config.reply_timeout
            } else {
                self.config.reply_timeout
            };
            loop {
                let reply = conn.recv_within(limit)?;
                // The rest of a WINNERS list follows its first frame at once.
                limit = self.config.reply_timeout;
                match reply {
                    Reply::NotReady { done, expected } if list_total.is_none() => {
                        self.retry.progress();
                        self.note_not_ready(done, expected);
                        break;
                    }
                    Reply::Winners {
                        agency,
                        total,
                        last,
                        documents: more,
                    } => {
                        self.check_agency(agency)?;
                        if list_total.is_some_and(|t| t != total) {
                            return Err(protocol("WINNERS frames disagree on the total".into()));
                        }
                        list_total = Some(total);
                        self.retry.progress();
                        documents.extend(more);
                        let complete = documents.len() == total as usize;
                        if documents.len() > total as usize || (last && !complete) {
                            return Err(protocol(format!(
                                "WINNERS lists {} documents of a total of {total}",
                                documents.len()
                            )));
                        }
                        if last {
                            // The report is a step too, so it comes a period
                            // after the draw (see `pacing`). A stop in that
                            // pause reports at once: the winners are here.
                            self.pacing.step(self.stop);
                            info!(
                                "action: consulta_ganadores | result: success | cant_ganadores: {total}"
                            );
                            return Ok(documents);
                        }
                    }
                    other => return Err(self.refusal(other, "GET_WINNERS", None)),
                }
            }
            // A parked request (wait=1) that came back NOT_READY at the
            // central's park timeout is asked again at once; one that came
            // back early, after a pause (see `not_ready`). Polling waits
            // between asks (a paced agency, its period).
            let pause = if wait {
                self.not_ready_pause.after(asked.elapsed())
            } else {
                self.pacing.period().unwrap_or(POLL_PERIOD)
            };
            if !pause.is_zero() && !self.stop.sleep(pause) {
                return Err(Interrupt::Stopped);
            }
        }
    }

    /// What an answer that is not the expected one means.
    fn refusal(&self, reply: Reply, request: &str, batch: Option<Batch>) -> Interrupt {
        let Reply::Error {
            code,
            raw_code,
            detail,
            message,
        } = reply
        else {
            return protocol(format!("unexpected answer to {request}: {reply:?}"));
        };
        match code {
            Some(ErrorCode::ShuttingDown) => Interrupt::Lost {
                why: format!("the central is shutting down (SHUTTING_DOWN): {message}"),
                at_least: Duration::ZERO,
                cause: Cause::ShuttingDown,
            },
            Some(ErrorCode::Storage) => {
                warn!(
                    "action: {} | result: in_progress | desde: {} | motivo: the central could not store (STORAGE): {}",
                    self.action(),
                    self.stored,
                    clean(&message)
                );
                Interrupt::Lost {
                    why: format!("the central could not store (STORAGE): {message}"),
                    at_least: STORAGE_BACKOFF,
                    cause: Cause::Storage,
                }
            }
            Some(ErrorCode::InvalidBet) => {
                let position = batch.map_or(0, |b| b.first) + detail as usize;
                let dni = if position < self.bets.len() {
                    self.bets.get(position).document
                } else {
                    "?"
                };
                Interrupt::Failed(Failure::Rejected(format!(
                    "the central rejected bet {position} of the stream (dni {dni}) as invalid: {message}"
                )))
            }
            Some(ErrorCode::Forbidden) => Interrupt::Failed(Failure::Rejected(format!(
                "the central does not let this connection act for agency {} (FORBIDDEN): {message}",
                self.config.id
            ))),
            Some(ErrorCode::UnknownAgency) => Interrupt::Failed(Failure::Rejected(format!(
                "the central does not know agency {} (UNKNOWN_AGENCY): {message}",
                self.config.id
            ))),
            Some(code) => protocol(format!(
                "the central answered {request} with ERROR {code} (detail {detail}): {message}"
            )),
            None => protocol(format!(
                "the central answered {request} with unknown ERROR code {raw_code} (detail {detail}): {message}"
            )),
        }
    }

    fn check_agency(&self, agency: u32) -> Result<(), Interrupt> {
        if agency == self.config.id {
            Ok(())
        } else {
            Err(protocol(format!(
                "the central answered for agency {agency} instead of {}",
                self.config.id
            )))
        }
    }

    /// The central durably holds the stream up to `stored`.
    fn acknowledge(&mut self, stored: usize) {
        self.stored = self.stored.max(stored);
        self.progress.acked(self.stored);
        if self.announce_each_bet {
            while self.announced < self.stored {
                let bet = self.bets.get(self.announced);
                info!(
                    "action: apuesta_enviada | result: success | dni: {} | numero: {}",
                    bet.document, bet.number
                );
                self.announced += 1;
            }
        }
    }

    /// The central holds `stored` bets, which may be fewer than were
    /// acknowledged before (its storage lost some): that is a failure of the
    /// central, logged as one, and the agency resends from there.
    fn resume_from(&mut self, stored: usize, why: &str) {
        if stored < self.stored {
            error!(
                "action: apuestas_perdidas | result: fail | servidor: {} | confirmadas: {} | stored: {stored} | motivo: {why}: the central holds fewer bets than were acknowledged, so its storage lost acknowledged bets; they are sent again",
                clean(self.centrals.current()),
                self.stored
            );
            warn!(
                "action: reanudar | result: in_progress | desde: {stored} | motivo: {why}: the central holds {stored} bets but {} were acknowledged",
                self.stored
            );
            self.stored = stored;
            self.progress.acked(stored);
        } else {
            info!("action: reanudar | result: in_progress | desde: {stored} | motivo: {why}");
            self.acknowledge(stored);
        }
    }

    /// AGENCY_CLOSED: a previous run already closed this agency with
    /// `stored` bets, so nothing can be sent; only the winners are left.
    fn closed_before(&mut self, stored: usize) {
        let total = self.bets.len();
        if stored == total {
            self.acknowledge(stored);
            info!(
                "action: apuestas_enviadas | result: success | cantidad: {total} | motivo: the agency was already closed at the central"
            );
        } else {
            self.all_stored = false;
            error!(
                "action: apuestas_enviadas | result: fail | cantidad: {total} | stored: {stored} | motivo: the agency was already closed at the central with another number of bets"
            );
        }
    }

    fn note_frame_cut(&mut self, batch: Batch) {
        if batch.cut_by_frame && !self.frame_cut_logged {
            self.frame_cut_logged = true;
            info!(
                "action: batch_size | result: success | configured: {} | batch: {} | first: {} | detail: the 8 kB frame limit fits fewer bets, so such batches are smaller",
                self.config.batch_max_amount, batch.count, batch.first
            );
        }
    }

    fn note_not_ready(&mut self, done: u32, expected: u32) {
        let line = format!(
            "action: consulta_ganadores | result: in_progress | agencias_listas: {done} | agencias_esperadas: {expected}"
        );
        if self.last_not_ready == Some((done, expected)) {
            debug!("{line}");
        } else {
            info!("{line}");
        }
        self.last_not_ready = Some((done, expected));
    }
}

fn protocol(why: String) -> Interrupt {
    Interrupt::Failed(Failure::Central(why))
}
