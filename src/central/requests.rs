//! What the central answers to each request, without sockets: a decoded
//! frame and the [`Central`] in; the reply pushed to the connection's held
//! [`Replies`] (durable when it depends on this iteration's commit) and a
//! [`Verdict`] for the loop out.
//!
//! The rules, in the order they apply (README "Choices"):
//! - Every request, first: on a connection bound to an agency, a request
//!   naming any other agency (an unknown one too) is `FORBIDDEN` and closes
//!   the connection, nothing of it staged; on an unbound connection, a
//!   request naming a known agency binds it (docs/protocol.md rev. 2).
//! - BATCH: unknown agency, agency closed, an invalid bet (nothing of the
//!   batch stored), then the stored count: retry (ACK), overlap (store the
//!   new ones), gap (`OUT_OF_ORDER`).
//! - DONE: closes the agency when the total matches its stored bets; again
//!   with the same total is ACKed again; another total is `MISSING_BETS`.
//! - GET_WINNERS: after the draw, the winners; wait=1 parks; wait=0 is
//!   NOT_READY, or parks until the commit when a staged DONE makes the draw
//!   pending. It writes nothing, so it is never answered `ERROR STORAGE`: a
//!   NOT_READY counting staged closes falls back to the durable count.
//!
//! Lines about one connection's refusals and winners go through its
//! [`RequestLog`], so a peer repeating a request cannot grow the log without
//! bound.

use std::net::SocketAddr;

use log::{info, warn};

use crate::bets::bet::{self, InvalidBet};
use crate::central::lottery::{BatchVerdict, DoneVerdict, Refusal};
use crate::central::replies::Replies;
use crate::central::state::{Central, CountsSeen};
use crate::wire::{self, ErrorCode, Frame, MAX_FRAME, WireError};

/// Lines about its requests (refusals, winners answers) logged per
/// connection; past this they are only counted, and the count is logged
/// when the connection closes. An honest agency needs a handful.
pub const REQUEST_LINES_LOGGED: u32 = 20;

/// While this many reply bytes wait to go out, a connection's requests are
/// not decoded (so a peer that does not read holds little of the central).
pub const OUTPUT_HIGH_WATER: usize = 2 * MAX_FRAME;

/// The parts a request handler works on while the input is borrowed.
pub struct Requests<'a> {
    /// Buffered bytes not yet decoded.
    pub input: &'a [u8],
    pub replies: &'a mut Replies,
    pub log: &'a mut RequestLog,
    pub peer: SocketAddr,
    /// Output bytes the socket has not taken yet (beside `replies`).
    pub unsent: usize,
    /// The agency the connection acts for, once bound (docs/protocol.md rev. 2).
    pub agency: &'a mut Option<u32>,
    /// Whether the connection has seen its agency's counts read from a
    /// store other centrals also write.
    pub counts: &'a mut CountsSeen,
}

/// What the loop does with the connection after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with the next request.
    Continue,
    /// Park the connection until the draw, its timeout or, for `wait =
    /// false`, this iteration's commit.
    Park { agency: u32, wait: bool },
    /// Stream the agency's winners (the draw has happened).
    AnswerWinners { agency: u32 },
    /// Send what is owed, then close.
    Close,
}

/// One connection's budget of request lines.
#[derive(Debug, Default)]
pub struct RequestLog {
    logged: u32,
    /// Lines past [`REQUEST_LINES_LOGGED`], counted and not logged.
    unlogged: u64,
}

impl RequestLog {
    /// Counts a line about one of this connection's requests; whether it
    /// should still be logged.
    pub fn line(&mut self) -> bool {
        if self.logged < REQUEST_LINES_LOGGED {
            self.logged += 1;
            true
        } else {
            self.unlogged += 1;
            false
        }
    }

    pub fn unlogged(&self) -> u64 {
        self.unlogged
    }
}

/// Answers one decoded request.
pub fn handle(frame: Frame<'_>, central: &mut Central, conn: &mut Requests<'_>) -> Verdict {
    let (log, replies, peer) = (&mut *conn.log, &mut *conn.replies, conn.peer);
    if let Some(named) = named_agency(&frame)
        && !bind(central, conn.agency, named)
    {
        return forbidden(log, replies, peer, &frame, named);
    }
    match frame {
        Frame::Batch {
            agency,
            first,
            bets,
        } => {
            batch(central, log, replies, agency, first, bets);
            Verdict::Continue
        }
        Frame::Done { agency, total } => {
            done(central, log, replies, agency, total);
            Verdict::Continue
        }
        Frame::GetWinners { agency, wait } => get_winners(central, log, replies, agency, wait),
        other => {
            // A reply type sent to the central: it does not take those.
            let kind = other.kind();
            warn!(
                "action: recibir_trama | result: fail | peer: {peer} | error: UNKNOWN_TYPE | detail: type 0x{kind:02x} is not a request"
            );
            replies.push(false, |out| {
                wire::encode_error(
                    out,
                    ErrorCode::UnknownType,
                    kind as u32,
                    "not a request type",
                )
            });
            Verdict::Close
        }
    }
}

/// The agency a request names.
pub fn named_agency(frame: &Frame<'_>) -> Option<u32> {
    match *frame {
        Frame::Batch { agency, .. }
        | Frame::Done { agency, .. }
        | Frame::GetWinners { agency, .. } => Some(agency),
        _ => None,
    }
}

/// Checks a request naming `named` against the connection's binding, and
/// binds an unbound connection to it if it is a known agency. `false`: the
/// connection acts for another agency.
fn bind(central: &Central, bound: &mut Option<u32>, named: u32) -> bool {
    match *bound {
        Some(agency) => agency == named,
        None => {
            if central.lottery().check_agency(named).is_ok() {
                *bound = Some(named);
            }
            true
        }
    }
}

/// A request for another agency than the connection's: refused, nothing
/// of it staged, and the connection closes once the reply is sent.
fn forbidden(
    log: &mut RequestLog,
    replies: &mut Replies,
    peer: SocketAddr,
    frame: &Frame<'_>,
    named: u32,
) -> Verdict {
    if log.line() {
        warn!(
            "action: verificar_agencia | result: fail | peer: {peer} | agencia: {named} | pedido: 0x{:02x} | error: FORBIDDEN | detail: {named}",
            frame.kind()
        );
    }
    replies.push(false, |out| {
        wire::encode_error(
            out,
            ErrorCode::Forbidden,
            named,
            "this connection acts for another agency",
        )
    });
    Verdict::Close
}

/// Bytes that are not a frame: the error, then close.
pub fn malformed(e: WireError, peer: SocketAddr, replies: &mut Replies) -> Verdict {
    warn!(
        "action: recibir_trama | result: fail | peer: {peer} | error: {} | detail: {e}",
        e.code()
    );
    replies.push(false, |out| {
        wire::encode_error(out, e.code(), e.detail(), &e.to_string())
    });
    Verdict::Close
}

fn batch(
    central: &mut Central,
    log: &mut RequestLog,
    replies: &mut Replies,
    agency: u32,
    first: u32,
    bets: wire::Bets<'_>,
) {
    if let Err(code) = answer_batch(central, log, replies, agency, first, bets) {
        central.count_refused(code);
    }
}

/// Answers a BATCH; `Err` with the code it was refused with.
fn answer_batch(
    central: &mut Central,
    log: &mut RequestLog,
    replies: &mut Replies,
    agency: u32,
    first: u32,
    bets: wire::Bets<'_>,
) -> Result<(), ErrorCode> {
    let count = bets.len();
    let verdict = central.lottery().check_batch(agency, first, count);
    if let BatchVerdict::Refuse(r) = verdict
        && matches!(r.code, ErrorCode::UnknownAgency | ErrorCode::AgencyClosed)
    {
        return refuse_batch(log, replies, agency, count, r, r.reason);
    }
    // The bets a Store verdict stores are checked as they are staged (one
    // walk of their bytes); the others, here.
    let checked_here = match verdict {
        BatchVerdict::Store { skip } => skip,
        _ => count,
    };
    let today = central.today();
    for (index, b) in bets.iter().enumerate().take(checked_here) {
        if let Err(why) = bet::validate(&b, today) {
            return refuse_invalid_bet(log, replies, agency, count, InvalidBet { index, why });
        }
    }
    match verdict {
        BatchVerdict::Refuse(r) => refuse_batch(log, replies, agency, count, r, r.reason),
        BatchVerdict::AlreadyStored { stored } => {
            central.stage_retry();
            replies.push(true, |out| wire::encode_ack(out, agency, stored));
            Ok(())
        }
        BatchVerdict::Store { skip } => match central.stage_bets(agency, first, bets, skip) {
            Ok(stored) => {
                replies.push(true, |out| wire::encode_ack(out, agency, stored));
                Ok(())
            }
            Err(invalid) => refuse_invalid_bet(log, replies, agency, count, invalid),
        },
    }
}

fn refuse_invalid_bet(
    log: &mut RequestLog,
    replies: &mut Replies,
    agency: u32,
    count: usize,
    invalid: InvalidBet,
) -> Result<(), ErrorCode> {
    let refusal = Refusal {
        code: ErrorCode::InvalidBet,
        detail: invalid.index as u32,
        reason: "",
    };
    let message = format!("bet {}: {}", invalid.index, invalid.why);
    refuse_batch(log, replies, agency, count, refusal, &message)
}

fn refuse_batch(
    log: &mut RequestLog,
    replies: &mut Replies,
    agency: u32,
    count: usize,
    r: Refusal,
    message: &str,
) -> Result<(), ErrorCode> {
    if log.line() {
        warn!(
            "action: apuesta_recibida | result: fail | cantidad: {count} | agencia: {agency} | error: {} | detail: {} | motivo: {message}",
            r.code, r.detail
        );
    }
    // An error whose detail is a stored count depends on staged state.
    let durable = matches!(r.code, ErrorCode::OutOfOrder | ErrorCode::AgencyClosed);
    replies.push(durable, |out| {
        wire::encode_error(out, r.code, r.detail, message)
    });
    Err(r.code)
}

fn done(
    central: &mut Central,
    log: &mut RequestLog,
    replies: &mut Replies,
    agency: u32,
    total: u32,
) {
    match central.stage_done(agency, total) {
        DoneVerdict::Close => {
            replies.push(true, |out| wire::encode_ack(out, agency, total));
        }
        DoneVerdict::AlreadyClosed { stored } => {
            replies.push(true, |out| wire::encode_ack(out, agency, stored));
        }
        DoneVerdict::Refuse(r) => {
            if log.line() {
                warn!(
                    "action: agencia_cerrada | result: fail | agencia: {agency} | total: {total} | error: {} | detail: {} | motivo: {}",
                    r.code, r.detail, r.reason
                );
            }
            let durable = r.code == ErrorCode::MissingBets;
            replies.push(durable, |out| {
                wire::encode_error(out, r.code, r.detail, r.reason)
            });
        }
    }
}

fn get_winners(
    central: &Central,
    log: &mut RequestLog,
    replies: &mut Replies,
    agency: u32,
    wait: bool,
) -> Verdict {
    let lottery = central.lottery();
    if let Err(r) = lottery.check_agency(agency) {
        if log.line() {
            warn!(
                "action: pedir_ganadores | result: fail | agencia: {agency} | error: {} | detail: {}",
                r.code, r.detail
            );
        }
        replies.push(false, |out| {
            wire::encode_error(out, r.code, r.detail, r.reason)
        });
        Verdict::Continue
    } else if lottery.drawn() {
        Verdict::AnswerWinners { agency }
    } else if wait || lottery.draw_pending() {
        // Behind a DONE that closes the last agency, even a wait=0 request
        // waits for the commit that runs the draw.
        Verdict::Park { agency, wait }
    } else {
        not_ready(central, replies);
        Verdict::Continue
    }
}

/// NOT_READY as of the requests before it, staged closes included; if
/// those do not reach the disk, the durable count instead (it wrote
/// nothing, so it is never `ERROR STORAGE`).
pub fn not_ready(central: &Central, replies: &mut Replies) {
    let lottery = central.lottery();
    let (staged, durable, expected) = (
        lottery.closed_with_staged(),
        lottery.closed(),
        lottery.expected(),
    );
    if staged == durable {
        replies.push(false, |out| wire::encode_not_ready(out, durable, expected));
    } else {
        replies.push_read_only(
            |out| wire::encode_not_ready(out, staged, expected),
            |out| wire::encode_not_ready(out, durable, expected),
        );
    }
}

/// Pushes the next WINNERS frames for `agency` (from byte `next` of its
/// answer on) while the connection's output stays below
/// [`OUTPUT_HIGH_WATER`]. Returns where to go on from, or `None` once the
/// frame with `last = 1` is pushed.
pub fn answer_winners(
    central: &Central,
    conn: &mut Requests<'_>,
    agency: u32,
    next: usize,
) -> Option<usize> {
    let pending = conn.unsent + conn.replies.worst_len();
    let (frames, next) = next_winners(central, conn.log, agency, next, pending);
    conn.replies
        .push(false, |out| out.extend_from_slice(frames));
    next
}

/// The next WINNERS frames for `agency`, from byte `next` of its answer
/// on: whole frames, as many as fit beside `pending` output bytes under
/// [`OUTPUT_HIGH_WATER`] (at least one). Returns them and where to go on
/// from, or `None` when they end with the frame marked `last` (logged then).
pub fn next_winners<'c>(
    central: &'c Central,
    log: &mut RequestLog,
    agency: u32,
    next: usize,
    pending: usize,
) -> (&'c [u8], Option<usize>) {
    let lottery = central.lottery();
    // Encoded when the agency's close became durable (or when the draw was
    // adopted from the store): the draw implies every agency is closed.
    let answer = lottery
        .answer(agency)
        .expect("after the draw every agency's answer is encoded");
    let n = wire::whole_frames(&answer[next..], OUTPUT_HIGH_WATER.saturating_sub(pending));
    let (end, len) = (next + n, answer.len());
    let frames = &answer[next..end];
    if end < len {
        return (frames, Some(end));
    }
    if log.line() {
        // The count is looked up only when the line is written.
        info!(
            "action: ganadores_enviados | result: success | agencia: {agency} | cant_ganadores: {}",
            lottery.winners(agency).map_or(0, <[_]>::len)
        );
    }
    (frames, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::csv::SyncPolicy;
    use crate::store::open::StoreSettings;
    use crate::wire::BetRef;

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

    /// A central on fresh files in a directory of its own, expecting `agencies`.
    struct Fixture {
        central: Central,
        log: RequestLog,
        /// The binding of the connection the requests come over.
        bound: Option<u32>,
        _dir: TempDir,
    }

    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture(agencies: u32) -> Fixture {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lottery-requests-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let bets = dir.join("bets.csv");
        let journal = dir.join("bets.csv.journal");
        let store = StoreSettings::Csv {
            bets_file: bets,
            journal_file: journal,
            sync: SyncPolicy::Never,
        };
        let central = Central::open(&store, agencies, 7574).unwrap();
        Fixture {
            central,
            log: RequestLog::default(),
            bound: None,
            _dir: TempDir(dir),
        }
    }

    /// What a connection with nothing buffered hands a request handler.
    fn requests<'a>(
        replies: &'a mut Replies,
        log: &'a mut RequestLog,
        agency: &'a mut Option<u32>,
    ) -> Requests<'a> {
        Requests {
            input: &[],
            replies,
            log,
            peer: PEER,
            unsent: 0,
            agency,
            counts: Box::leak(Box::new(CountsSeen::Read)),
        }
    }

    /// Two agencies expected; a connection that stored a bet of agency 1.
    fn bound_to_agency_1() -> Fixture {
        let mut f = fixture(2);
        f.batch(1, 0, &[bet(1)]);
        f
    }

    fn bet(number: u16) -> BetRef<'static> {
        BetRef {
            first_name: "Ana",
            last_name: "Pérez",
            document: "30111222",
            birthdate: wire::Date {
                year: 1980,
                month: 5,
                day: 17,
            },
            number,
        }
    }

    impl Fixture {
        /// Sends a frame that is refused: its one ERROR's code and detail,
        /// and the verdict.
        fn refused(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> ((u8, u32), Verdict) {
            let (frames, verdict) = self.send(encode);
            (error_code(&frames), verdict)
        }

        /// Sends one frame; the replies it produced (as if committed) and the verdict.
        fn send(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> (Vec<Frame<'static>>, Verdict) {
            let mut bytes = Vec::new();
            encode(&mut bytes);
            let (frame, _) = wire::decode(&bytes).unwrap().unwrap();
            let mut replies = Replies::default();
            let mut conn = requests(&mut replies, &mut self.log, &mut self.bound);
            let verdict = handle(frame, &mut self.central, &mut conn);
            let mut out = Vec::new();
            replies.settle(true, &mut out);
            (decode_all(out), verdict)
        }

        /// Sends one frame over a fresh connection, held replies settled
        /// as the commit went.
        fn send_then_commit(
            &mut self,
            encode: impl FnOnce(&mut Vec<u8>),
            committed: bool,
        ) -> Vec<Frame<'static>> {
            let mut bytes = Vec::new();
            encode(&mut bytes);
            let (frame, _) = wire::decode(&bytes).unwrap().unwrap();
            let mut replies = Replies::default();
            let mut unbound = None;
            let mut conn = requests(&mut replies, &mut self.log, &mut unbound);
            handle(frame, &mut self.central, &mut conn);
            let mut out = Vec::new();
            replies.settle(committed, &mut out);
            decode_all(out)
        }

        /// The next requests come over another connection.
        fn reconnect(&mut self) {
            self.bound = None;
        }

        fn batch(&mut self, agency: u32, first: u32, bets: &[BetRef<'_>]) -> Vec<Frame<'static>> {
            let (frames, verdict) = self.send(|o| wire::encode_batch(o, agency, first, bets));
            assert_eq!(verdict, Verdict::Continue);
            frames
        }

        fn commit(&mut self) -> bool {
            let outcome = self
                .central
                .start_commit()
                .expect("the CSV store commits at once");
            assert!(outcome.committed);
            outcome.drew
        }
    }

    fn decode_all(out: Vec<u8>) -> Vec<Frame<'static>> {
        let out: &'static [u8] = Vec::leak(out);
        let mut frames = Vec::new();
        let mut rest = out;
        while let Some((f, n)) = wire::decode(rest).unwrap() {
            frames.push(f);
            rest = &rest[n..];
        }
        frames
    }

    fn error_code(frames: &[Frame<'_>]) -> (u8, u32) {
        match frames {
            [Frame::Error { code, detail, .. }] => (*code, *detail),
            other => panic!("expected one ERROR, got {other:?}"),
        }
    }

    #[test]
    fn a_batch_of_an_unknown_agency_is_refused_with_its_number() {
        let mut f = fixture(2);
        let frames = f.batch(3, 0, &[bet(1)]);
        assert_eq!(error_code(&frames), (ErrorCode::UnknownAgency as u8, 3));
    }

    #[test]
    fn a_batch_of_a_closed_agency_is_refused_with_its_stored_count() {
        let mut f = fixture(2);
        f.batch(1, 0, &[bet(1), bet(2)]);
        f.send(|o| wire::encode_done(o, 1, 2));
        let frames = f.batch(1, 2, &[bet(3)]);
        assert_eq!(error_code(&frames), (ErrorCode::AgencyClosed as u8, 2));
    }

    #[test]
    fn a_batch_with_an_invalid_bet_names_its_index_and_stores_nothing() {
        let mut f = fixture(1);
        let mut bad = bet(1);
        bad.document = "12ab";
        let frames = f.batch(1, 0, &[bet(1), bad]);
        assert_eq!(error_code(&frames), (ErrorCode::InvalidBet as u8, 1));
        assert_eq!(f.central.lottery().stored(1), Some(0));
    }

    #[test]
    fn a_retried_batch_is_acknowledged_and_not_stored_again() {
        let mut f = fixture(1);
        f.batch(1, 0, &[bet(1), bet(2)]);
        let frames = f.batch(1, 0, &[bet(1), bet(2)]);
        assert_eq!(
            frames,
            [Frame::Ack {
                agency: 1,
                stored: 2
            }]
        );
        assert_eq!(f.central.lottery().stored(1), Some(2));
    }

    #[test]
    fn an_overlapping_batch_stores_only_the_new_bets() {
        let mut f = fixture(1);
        f.batch(1, 0, &[bet(1), bet(2)]);
        let frames = f.batch(1, 1, &[bet(2), bet(3), bet(4)]);
        assert_eq!(
            frames,
            [Frame::Ack {
                agency: 1,
                stored: 4
            }]
        );
    }

    #[test]
    fn a_batch_after_a_gap_is_out_of_order_with_the_stored_count() {
        let mut f = fixture(1);
        f.batch(1, 0, &[bet(1)]);
        let frames = f.batch(1, 5, &[bet(2)]);
        assert_eq!(error_code(&frames), (ErrorCode::OutOfOrder as u8, 1));
    }

    #[test]
    fn done_closes_the_agency_and_a_repeated_done_is_acknowledged_again() {
        let mut f = bound_to_agency_1();
        let ack = [Frame::Ack {
            agency: 1,
            stored: 1,
        }];
        assert_eq!(f.send(|o| wire::encode_done(o, 1, 1)).0, ack);
        assert!(!f.commit());
        assert_eq!(f.central.lottery().closed(), 1);
        assert_eq!(f.send(|o| wire::encode_done(o, 1, 1)).0, ack);
        assert_eq!(f.central.lottery().closed_with_staged(), 1);
    }

    #[test]
    fn done_with_bets_missing_is_refused_with_the_stored_count() {
        let mut f = fixture(1);
        f.batch(1, 0, &[bet(1), bet(2)]);
        let (frames, _) = f.send(|o| wire::encode_done(o, 1, 3));
        assert_eq!(error_code(&frames), (ErrorCode::MissingBets as u8, 2));
        assert_eq!(f.central.lottery().closed_with_staged(), 0);
        // The agency resumes from the stored count, then closes.
        let (frames, _) = f.send(|o| wire::encode_done(o, 1, 2));
        assert_eq!(
            frames,
            [Frame::Ack {
                agency: 1,
                stored: 2
            }]
        );
    }

    #[test]
    fn get_winners_after_the_draw_answers_the_winners() {
        let mut f = fixture(1);
        f.batch(1, 0, &[bet(7574), bet(1)]);
        f.send(|o| wire::encode_done(o, 1, 2));
        assert!(f.commit());
        let (frames, verdict) = f.send(|o| wire::encode_get_winners(o, 1, false));
        assert!(frames.is_empty());
        assert_eq!(verdict, Verdict::AnswerWinners { agency: 1 });
        let mut replies = Replies::default();
        let mut bound = Some(1);
        let mut conn = requests(&mut replies, &mut f.log, &mut bound);
        let next = answer_winners(&f.central, &mut conn, 1, 0);
        assert_eq!(next, None);
        let mut out = Vec::new();
        replies.settle(true, &mut out);
        let frames = decode_all(out);
        let [
            Frame::Winners {
                agency: 1,
                total: 1,
                last: true,
                documents,
            },
        ] = frames[..]
        else {
            panic!("expected one WINNERS frame, got {frames:?}");
        };
        assert_eq!(documents.iter().collect::<Vec<_>>(), ["30111222"]);
    }

    #[test]
    fn get_winners_with_wait_parks_before_the_draw() {
        let mut f = fixture(2);
        let (frames, verdict) = f.send(|o| wire::encode_get_winners(o, 2, true));
        assert!(frames.is_empty());
        assert_eq!(
            verdict,
            Verdict::Park {
                agency: 2,
                wait: true
            }
        );
    }

    #[test]
    fn get_winners_without_wait_is_not_ready_before_the_draw() {
        let mut f = bound_to_agency_1();
        f.send(|o| wire::encode_done(o, 1, 1));
        f.commit();
        f.reconnect();
        let (frames, verdict) = f.send(|o| wire::encode_get_winners(o, 2, false));
        assert_eq!(
            frames,
            [Frame::NotReady {
                done: 1,
                expected: 2
            }]
        );
        assert_eq!(verdict, Verdict::Continue);
    }

    #[test]
    fn get_winners_without_wait_behind_the_last_staged_done_parks_until_the_commit() {
        let mut f = fixture(1);
        f.batch(1, 0, &[bet(1)]);
        f.send(|o| wire::encode_done(o, 1, 1));
        let (frames, verdict) = f.send(|o| wire::encode_get_winners(o, 1, false));
        assert!(frames.is_empty());
        assert_eq!(
            verdict,
            Verdict::Park {
                agency: 1,
                wait: false
            }
        );
    }

    #[test]
    fn get_winners_of_an_unknown_agency_is_refused() {
        assert_eq!(
            fixture(1).refused(|o| wire::encode_get_winners(o, 9, true)),
            ((ErrorCode::UnknownAgency as u8, 9), Verdict::Continue)
        );
    }

    #[test]
    fn a_reply_type_sent_as_a_request_closes_the_connection() {
        let mut f = fixture(1);
        let (frames, verdict) = f.send(|o| wire::encode_ack(o, 1, 1));
        assert_eq!(
            error_code(&frames),
            (ErrorCode::UnknownType as u8, wire::kind::ACK as u32)
        );
        assert_eq!(verdict, Verdict::Close);
    }

    #[test]
    fn request_lines_past_the_budget_are_counted_not_logged() {
        let mut log = RequestLog::default();
        let logged = (0..REQUEST_LINES_LOGGED + 5).filter(|_| log.line()).count();
        assert_eq!(logged, REQUEST_LINES_LOGGED as usize);
        assert_eq!(log.unlogged(), 5);
    }

    #[test]
    fn the_first_request_naming_a_known_agency_binds_the_connection() {
        let mut f = fixture(2);
        f.send(|o| wire::encode_get_winners(o, 9, false));
        assert_eq!(f.bound, None, "an unknown agency binds nothing");
        f.batch(2, 0, &[bet(1)]);
        assert_eq!(f.bound, Some(2));
    }

    #[test]
    fn a_batch_for_another_agency_is_forbidden_closes_and_stores_nothing() {
        let mut f = bound_to_agency_1();
        assert_eq!(
            f.refused(|o| wire::encode_batch(o, 2, 0, &[bet(2)])),
            ((ErrorCode::Forbidden as u8, 2), Verdict::Close)
        );
        assert_eq!(f.central.lottery().stored(2), Some(0));
        assert_eq!(f.bound, Some(1));
    }

    #[test]
    fn done_and_get_winners_for_another_agency_are_forbidden() {
        let mut f = fixture(2);
        f.send(|o| wire::encode_done(o, 2, 0));
        f.commit();
        f.reconnect();
        f.send(|o| wire::encode_get_winners(o, 1, true));
        assert_eq!(
            f.refused(|o| wire::encode_done(o, 2, 0)),
            ((ErrorCode::Forbidden as u8, 2), Verdict::Close)
        );
        assert_eq!(
            f.refused(|o| wire::encode_get_winners(o, 2, false)),
            ((ErrorCode::Forbidden as u8, 2), Verdict::Close)
        );
    }

    #[test]
    fn a_stranger_cannot_close_an_agency_over_a_connection_bound_to_another() {
        let mut f = bound_to_agency_1();
        assert_eq!(
            f.refused(|o| wire::encode_done(o, 2, 0)),
            ((ErrorCode::Forbidden as u8, 2), Verdict::Close)
        );
        assert_eq!(f.central.lottery().closed_with_staged(), 0);
    }

    #[test]
    fn an_unknown_agency_on_a_bound_connection_is_forbidden() {
        let mut f = bound_to_agency_1();
        assert_eq!(
            f.refused(|o| wire::encode_batch(o, 9, 0, &[bet(1)])),
            ((ErrorCode::Forbidden as u8, 9), Verdict::Close)
        );
    }

    #[test]
    fn not_ready_behind_a_commit_that_fails_is_the_durable_count_not_a_storage_error() {
        let mut f = fixture(3);
        // One agency's DONE is staged (another connection); the commit fails.
        f.send(|o| wire::encode_done(o, 1, 0));
        let frames = f.send_then_commit(|o| wire::encode_get_winners(o, 2, false), false);
        assert_eq!(
            frames,
            [Frame::NotReady {
                done: 0,
                expected: 3
            }]
        );
    }
}
