//! The lottery's state: each agency's stored count, which agencies are
//! closed, their winners, and whether the draw has happened. Pure logic, no I/O.
//!
//! Changes are made in two steps, to match the storage's group commit: a
//! BATCH or DONE first changes the *staged* state (so that the next batch of
//! the same loop iteration is checked against it), then [`Lottery::commit`]
//! makes it durable once the bets are synced, or [`Lottery::rollback`]
//! forgets it when the disk refused them. Only durable state is reported to
//! other agencies (`NOT_READY.done`) and only a durable close can trigger the
//! draw.
//!
//! The winners are collected as bets are stored (a bet wins when its number
//! is the winning number), so the draw itself costs nothing however many
//! bets there are; each agency's answer, its WINNERS frames, is encoded
//! once when its close is durable ([`Answers`]).

use super::answers::Answers;
use crate::store::seam::RecoveredAgency;
use crate::wire::ErrorCode;

/// What the central does with a BATCH, decided from the agency's stored count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Store the bets from index `skip` of the batch on (`skip > 0` when the
    /// batch overlaps bets already stored), then ACK.
    Store { skip: usize },
    /// Every bet of the batch is stored already: ACK with this count.
    AlreadyStored { stored: u32 },
    /// Refuse the batch with this error.
    Refuse(Refusal),
}

/// An `ERROR` to answer with: code, detail, and a short reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub detail: u32,
    pub reason: &'static str,
}

/// What the central does with a DONE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoneVerdict {
    /// The agency is closed now (staged until the commit): record it.
    Close,
    /// The agency was closed already with this total: ACK again.
    AlreadyClosed {
        stored: u32,
    },
    Refuse(Refusal),
}

#[derive(Clone, Debug, Default)]
struct Agency {
    stored: u32,
    durable_stored: u32,
    closed: bool,
    durable_closed: bool,
    /// Documents of the winning bets, in stored order; the first
    /// `durable_winners` of them are durable.
    winners: Vec<Box<str>>,
    durable_winners: usize,
    /// Listed in `Lottery::staged`.
    staged: bool,
}

#[derive(Debug)]
pub struct Lottery {
    agencies: Vec<Agency>,
    /// Indexes of the agencies changed since the last commit, so that a
    /// commit costs what was staged, not the number of agencies.
    staged: Vec<usize>,
    winning_number: u16,
    durable_closed: u32,
    /// Closed agencies, staged closes included.
    closed_with_staged: u32,
    drawn: bool,
    /// The draw is the store's (several centrals share it): this lottery
    /// never draws on its own count, it adopts the draw the store recorded
    /// ([`Lottery::adopt_draw`]).
    store_draws: bool,
    /// The WINNERS frames of each durably closed agency.
    answers: Answers,
}

impl Lottery {
    /// A lottery expecting agencies `1..=agencies`, none of which has sent anything.
    pub fn new(agencies: u32, winning_number: u16) -> Lottery {
        Lottery {
            agencies: vec![Agency::default(); agencies as usize],
            staged: Vec::new(),
            winning_number,
            durable_closed: 0,
            closed_with_staged: 0,
            drawn: false,
            store_draws: false,
            answers: Answers::new(agencies as usize),
        }
    }

    /// A lottery resumed from what the storage recovered (index 0 is agency 1).
    /// If every agency was closed, the draw has happened.
    pub fn recovered(recovered: Vec<RecoveredAgency>, winning_number: u16) -> Lottery {
        let agencies: Vec<Agency> = recovered
            .into_iter()
            .map(|r| Agency {
                stored: r.stored,
                durable_stored: r.stored,
                closed: r.closed,
                durable_closed: r.closed,
                durable_winners: r.winners.len(),
                winners: r.winners,
                staged: false,
            })
            .collect();
        let durable_closed = agencies.iter().filter(|a| a.durable_closed).count() as u32;
        let drawn = durable_closed == agencies.len() as u32;
        let mut answers = Answers::new(agencies.len());
        for (index, a) in agencies.iter().enumerate() {
            if a.durable_closed {
                answers.record(index, &a.winners);
            }
        }
        Lottery {
            agencies,
            staged: Vec::new(),
            winning_number,
            durable_closed,
            closed_with_staged: durable_closed,
            drawn,
            store_draws: false,
            answers,
        }
    }

    /// From now on the draw is the store's: see [`Lottery::adopt_draw`].
    pub fn leave_draw_to_store(&mut self) {
        self.store_draws = true;
    }

    /// Raises `agency`'s durable count and close to what the store holds
    /// (stored by another central); never lowers them. Only while nothing
    /// of the agency is staged.
    pub fn raise(&mut self, agency: u32, stored: u32, closed: bool) {
        let Some(a) = (agency as usize)
            .checked_sub(1)
            .and_then(|i| self.agencies.get_mut(i))
        else {
            return;
        };
        debug_assert!(!a.staged, "raised with bets or a close staged");
        if stored > a.durable_stored {
            a.stored = stored;
            a.durable_stored = stored;
        }
        if closed && !a.durable_closed {
            a.closed = true;
            a.durable_closed = true;
            self.durable_closed += 1;
            self.closed_with_staged += 1;
        }
    }

    /// Adopts the draw as the store recorded it: every agency's count and
    /// close, and its winners (index 0 is agency 1). Returns whether the
    /// lottery was not drawn before.
    pub fn adopt_draw(&mut self, agencies: Vec<RecoveredAgency>) -> bool {
        for (index, r) in agencies.into_iter().enumerate() {
            let agency = index as u32 + 1;
            self.raise(agency, r.stored, r.closed);
            let a = &mut self.agencies[index];
            a.winners = r.winners;
            a.durable_winners = a.winners.len();
            self.answers.record(index, &a.winners);
        }
        let newly = !self.drawn;
        self.drawn = true;
        newly
    }

    pub fn expected(&self) -> u32 {
        self.agencies.len() as u32
    }

    /// How many agencies are durably closed.
    pub fn closed(&self) -> u32 {
        self.durable_closed
    }

    /// How many agencies are closed once the staged closes are committed:
    /// what a request pipelined behind a DONE must be answered from.
    pub fn closed_with_staged(&self) -> u32 {
        self.closed_with_staged
    }

    /// Whether the next commit, if it succeeds, runs the draw.
    pub fn draw_pending(&self) -> bool {
        !self.drawn && self.closed_with_staged == self.expected()
    }

    pub fn drawn(&self) -> bool {
        self.drawn
    }

    pub fn winning_number(&self) -> u16 {
        self.winning_number
    }

    /// The agency's stored count, staged bets included.
    pub fn stored(&self, agency: u32) -> Option<u32> {
        self.agency(agency).map(|a| a.stored)
    }

    /// The agency's durable stored count, and whether its close is durable.
    pub fn durable(&self, agency: u32) -> Option<(u32, bool)> {
        self.agency(agency)
            .map(|a| (a.durable_stored, a.durable_closed))
    }

    /// The agency's durable winners, in stored order.
    pub fn winners(&self, agency: u32) -> Option<&[Box<str>]> {
        self.agency(agency).map(|a| &a.winners[..a.durable_winners])
    }

    /// The WINNERS frames that answer the agency's GET_WINNERS, once its
    /// close is durable: its durable winners, encoded when it closed.
    pub fn answer(&self, agency: u32) -> Option<&[u8]> {
        self.answers.get((agency as usize).checked_sub(1)?)
    }

    /// Whether `agency` is one this central expects; else the error to answer.
    pub fn check_agency(&self, agency: u32) -> Result<(), Refusal> {
        match self.agency(agency) {
            Some(_) => Ok(()),
            None => Err(Refusal {
                code: ErrorCode::UnknownAgency,
                detail: agency,
                reason: "no such agency",
            }),
        }
    }

    fn agency(&self, agency: u32) -> Option<&Agency> {
        (agency as usize)
            .checked_sub(1)
            .and_then(|i| self.agencies.get(i))
    }

    /// The agency, noted as changed for the next commit or rollback.
    fn agency_mut(&mut self, agency: u32) -> &mut Agency {
        let index = agency as usize - 1;
        let a = &mut self.agencies[index];
        if !a.staged {
            a.staged = true;
            self.staged.push(index);
        }
        a
    }

    /// Decides what to do with a batch of `count` valid bets starting at `first`.
    pub fn check_batch(&self, agency: u32, first: u32, count: usize) -> BatchVerdict {
        let Some(a) = self.agency(agency) else {
            return BatchVerdict::Refuse(Refusal {
                code: ErrorCode::UnknownAgency,
                detail: agency,
                reason: "no such agency",
            });
        };
        if a.closed {
            return BatchVerdict::Refuse(Refusal {
                code: ErrorCode::AgencyClosed,
                detail: a.stored,
                reason: "agency already sent DONE",
            });
        }
        let end = first as u64 + count as u64;
        if first > a.stored {
            BatchVerdict::Refuse(Refusal {
                code: ErrorCode::OutOfOrder,
                detail: a.stored,
                reason: "batch leaves a gap after the stored bets",
            })
        } else if end <= a.stored as u64 {
            BatchVerdict::AlreadyStored { stored: a.stored }
        } else if end > u32::MAX as u64 {
            BatchVerdict::Refuse(Refusal {
                code: ErrorCode::InvalidBet,
                detail: 0,
                reason: "bet position beyond 4294967295",
            })
        } else {
            BatchVerdict::Store {
                skip: (a.stored - first) as usize,
            }
        }
    }

    /// Records one more staged bet of `agency` (after [`Lottery::check_batch`]
    /// said to store it, and the bet was checked: its document is digits);
    /// returns whether it wins. Only a winner's document is copied.
    pub fn stage_bet(&mut self, agency: u32, number: u16, document: &[u8]) -> bool {
        let wins = number == self.winning_number;
        let a = self.agency_mut(agency);
        a.stored += 1;
        if wins {
            a.winners.push(String::from_utf8_lossy(document).into());
        }
        wins
    }

    /// Records `count` more staged bets of `agency` at once, of which the
    /// `winners` (their documents, digits) win; the batch form of
    /// [`Lottery::stage_bet`], one agency lookup per batch.
    pub fn stage_batch<'a>(
        &mut self,
        agency: u32,
        count: u32,
        winners: impl Iterator<Item = &'a [u8]>,
    ) {
        let a = self.agency_mut(agency);
        a.stored += count;
        a.winners
            .extend(winners.map(|document| String::from_utf8_lossy(document).into()));
    }

    /// Decides what to do with a DONE; a `Close` verdict is staged already.
    pub fn done(&mut self, agency: u32, total: u32) -> DoneVerdict {
        if let Err(refusal) = self.check_agency(agency) {
            return DoneVerdict::Refuse(refusal);
        }
        let a = self.agency_mut(agency);
        if total != a.stored {
            return DoneVerdict::Refuse(Refusal {
                code: ErrorCode::MissingBets,
                detail: a.stored,
                reason: "total differs from the stored bets",
            });
        }
        if a.closed {
            return DoneVerdict::AlreadyClosed { stored: a.stored };
        }
        a.closed = true;
        self.closed_with_staged += 1;
        DoneVerdict::Close
    }

    /// Makes the staged state durable. Returns `true` when this commit closed
    /// the last agency, that is, when the draw happens now.
    pub fn commit(&mut self) -> bool {
        for index in self.staged.drain(..) {
            let a = &mut self.agencies[index];
            a.staged = false;
            a.durable_stored = a.stored;
            a.durable_winners = a.winners.len();
            if a.closed && !a.durable_closed {
                a.durable_closed = true;
                self.durable_closed += 1;
                // Final now: a closed agency stores no more bets.
                self.answers.record(index, &a.winners);
            }
        }
        if !self.drawn && !self.store_draws && self.durable_closed == self.expected() {
            self.drawn = true;
            return true;
        }
        false
    }

    /// Forgets everything staged since the last commit.
    pub fn rollback(&mut self) {
        self.closed_with_staged = self.durable_closed;
        for index in self.staged.drain(..) {
            let a = &mut self.agencies[index];
            a.staged = false;
            a.stored = a.durable_stored;
            a.winners.truncate(a.durable_winners);
            a.closed = a.durable_closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(l: &mut Lottery, agency: u32, numbers: &[u16]) {
        for (i, &n) in numbers.iter().enumerate() {
            l.stage_bet(agency, n, format!("{i}").as_bytes());
        }
    }

    #[test]
    fn a_staged_batch_counts_and_tallies_as_its_bets_one_by_one() {
        let numbers = [7574, 1, 7574, 9999, 0];
        let mut one_by_one = Lottery::new(2, 7574);
        stage(&mut one_by_one, 2, &numbers);
        let mut batch = Lottery::new(2, 7574);
        let documents: Vec<String> = (0..numbers.len()).map(|i| format!("{i}")).collect();
        let winners = numbers
            .iter()
            .zip(&documents)
            .filter(|(n, _)| **n == 7574)
            .map(|(_, d)| d.as_bytes());
        batch.stage_batch(2, numbers.len() as u32, winners);
        for l in [&mut one_by_one, &mut batch] {
            l.commit();
        }
        assert_eq!(batch.stored(2), one_by_one.stored(2));
        assert_eq!(batch.stored(2), Some(5));
        assert_eq!(batch.winners(2), one_by_one.winners(2));
    }

    #[test]
    fn a_first_batch_is_stored_whole() {
        let l = Lottery::new(2, 7574);
        assert_eq!(l.check_batch(1, 0, 10), BatchVerdict::Store { skip: 0 });
    }

    #[test]
    fn an_overlapping_batch_stores_only_the_new_bets() {
        let mut l = Lottery::new(2, 7574);
        stage(&mut l, 1, &[1, 2, 3]);
        assert_eq!(l.check_batch(1, 1, 5), BatchVerdict::Store { skip: 2 });
    }

    #[test]
    fn a_retry_of_stored_bets_is_acknowledged_without_storing() {
        let mut l = Lottery::new(2, 7574);
        stage(&mut l, 1, &[1, 2, 3]);
        assert_eq!(
            l.check_batch(1, 0, 3),
            BatchVerdict::AlreadyStored { stored: 3 }
        );
    }

    #[test]
    fn a_gap_is_out_of_order_with_the_stored_count() {
        let mut l = Lottery::new(2, 7574);
        stage(&mut l, 2, &[1, 2]);
        let BatchVerdict::Refuse(r) = l.check_batch(2, 5, 1) else {
            panic!()
        };
        assert_eq!((r.code, r.detail), (ErrorCode::OutOfOrder, 2));
    }

    #[test]
    fn agencies_out_of_range_are_unknown() {
        let mut l = Lottery::new(2, 7574);
        for agency in [0, 3, u32::MAX] {
            let BatchVerdict::Refuse(r) = l.check_batch(agency, 0, 1) else {
                panic!()
            };
            assert_eq!((r.code, r.detail), (ErrorCode::UnknownAgency, agency));
            let DoneVerdict::Refuse(r) = l.done(agency, 0) else {
                panic!()
            };
            assert_eq!(r.code, ErrorCode::UnknownAgency);
            assert!(l.check_agency(agency).is_err());
        }
    }

    #[test]
    fn done_with_a_wrong_total_is_missing_bets_with_the_stored_count() {
        let mut l = Lottery::new(1, 7574);
        stage(&mut l, 1, &[1, 2, 3]);
        let DoneVerdict::Refuse(r) = l.done(1, 4) else {
            panic!()
        };
        assert_eq!((r.code, r.detail), (ErrorCode::MissingBets, 3));
    }

    #[test]
    fn bets_after_done_are_refused_and_a_repeated_done_is_acknowledged() {
        let mut l = Lottery::new(2, 7574);
        stage(&mut l, 1, &[1]);
        assert_eq!(l.done(1, 1), DoneVerdict::Close);
        assert_eq!(l.done(1, 1), DoneVerdict::AlreadyClosed { stored: 1 });
        let BatchVerdict::Refuse(r) = l.check_batch(1, 1, 1) else {
            panic!()
        };
        assert_eq!((r.code, r.detail), (ErrorCode::AgencyClosed, 1));
    }

    #[test]
    fn the_draw_happens_on_the_commit_that_closes_the_last_agency() {
        let mut l = Lottery::new(2, 7574);
        stage(&mut l, 1, &[7574, 1, 7574]);
        assert_eq!(l.done(1, 3), DoneVerdict::Close);
        assert!(!l.commit());
        assert_eq!(l.closed(), 1);
        assert_eq!(l.done(2, 0), DoneVerdict::Close);
        assert!(!l.drawn());
        assert!(l.commit());
        assert!(l.drawn());
        assert!(!l.commit(), "the draw happens once");
        assert_eq!(l.winners(1).unwrap().len(), 2);
        assert_eq!(l.winners(2).unwrap().len(), 0);
    }

    #[test]
    fn a_staged_close_of_the_last_agency_makes_the_draw_pending() {
        let mut l = Lottery::new(2, 7574);
        assert_eq!(l.done(1, 0), DoneVerdict::Close);
        assert_eq!((l.closed(), l.closed_with_staged()), (0, 1));
        assert!(!l.draw_pending());
        l.commit();
        assert_eq!(l.done(2, 0), DoneVerdict::Close);
        assert!(l.draw_pending());
        l.rollback();
        assert!(!l.draw_pending());
        assert_eq!(l.closed_with_staged(), 1);
        assert_eq!(l.done(2, 0), DoneVerdict::Close);
        assert!(l.commit());
        assert!(!l.draw_pending(), "the draw has happened");
    }

    #[test]
    fn a_rollback_forgets_staged_bets_winners_and_closes() {
        let mut l = Lottery::new(1, 7574);
        stage(&mut l, 1, &[7574]);
        l.commit();
        stage(&mut l, 1, &[7574, 5]);
        assert_eq!(l.done(1, 3), DoneVerdict::Close);
        l.rollback();
        assert_eq!(l.stored(1), Some(1));
        assert_eq!(l.winners(1).unwrap().len(), 1);
        assert_eq!(l.check_batch(1, 1, 1), BatchVerdict::Store { skip: 0 });
        assert!(!l.drawn());
    }

    #[test]
    fn counts_stored_by_another_central_raise_an_agency_and_never_lower_it() {
        let mut l = Lottery::new(2, 7574);
        stage(&mut l, 1, &[1, 2, 3]);
        l.commit();
        l.raise(1, 2, false);
        assert_eq!(l.stored(1), Some(3), "never lowered");
        l.raise(1, 10, false);
        assert_eq!(l.stored(1), Some(10));
        assert_eq!(
            l.check_batch(1, 3, 1),
            BatchVerdict::AlreadyStored { stored: 10 }
        );
        l.raise(2, 4, true);
        assert_eq!(l.closed(), 1);
        assert_eq!(l.done(2, 4), DoneVerdict::AlreadyClosed { stored: 4 });
        l.raise(2, 4, true);
        assert_eq!(l.closed(), 1, "a close is counted once");
        l.raise(3, 1, true);
        assert_eq!(l.closed(), 1, "no such agency");
    }

    #[test]
    fn a_lottery_that_leaves_the_draw_to_its_store_draws_only_when_told() {
        let mut l = Lottery::new(1, 7574);
        l.leave_draw_to_store();
        stage(&mut l, 1, &[7574]);
        assert_eq!(l.done(1, 1), DoneVerdict::Close);
        assert!(l.draw_pending());
        assert!(!l.commit(), "every agency closed, but the store draws");
        assert!(!l.drawn());
        let drawn = vec![RecoveredAgency {
            stored: 5,
            closed: true,
            winners: vec!["7".into(), "8".into()],
        }];
        assert!(l.adopt_draw(drawn.clone()));
        assert!(!l.adopt_draw(drawn), "drawn once");
        assert!(l.drawn());
        assert_eq!(l.stored(1), Some(5));
        assert_eq!(answered(&l, 1), Some(vec!["7".into(), "8".into()]));
    }

    #[test]
    fn staged_winners_are_not_reported_before_the_commit() {
        let mut l = Lottery::new(1, 7574);
        stage(&mut l, 1, &[7574]);
        assert_eq!(l.winners(1).unwrap().len(), 0);
        l.commit();
        assert_eq!(l.winners(1).unwrap().len(), 1);
    }

    #[test]
    fn a_recovered_lottery_resumes_counts_and_draws_if_all_were_closed() {
        let all_closed = vec![
            RecoveredAgency {
                stored: 3,
                closed: true,
                winners: vec!["1".into()],
            },
            RecoveredAgency {
                stored: 0,
                closed: true,
                winners: vec![],
            },
        ];
        let l = Lottery::recovered(all_closed, 7574);
        assert!(l.drawn());
        assert_eq!(l.winners(1).unwrap().len(), 1);
        let l = Lottery::recovered(
            vec![RecoveredAgency {
                stored: 3,
                closed: false,
                winners: vec![],
            }],
            7574,
        );
        assert!(!l.drawn());
        assert_eq!(l.check_batch(1, 3, 1), BatchVerdict::Store { skip: 0 });
    }

    /// The documents of the agency's answer, frame after frame.
    fn answered(l: &Lottery, agency: u32) -> Option<Vec<String>> {
        let mut bytes = l.answer(agency)?;
        let mut documents = Vec::new();
        while let Some((frame, n)) = crate::wire::decode(bytes).unwrap() {
            let crate::wire::Frame::Winners { documents: d, .. } = frame else {
                panic!("not WINNERS: {frame:?}");
            };
            documents.extend(d.iter().map(str::to_owned));
            bytes = &bytes[n..];
        }
        Some(documents)
    }

    #[test]
    fn an_agency_is_answered_with_its_winners_only_once_its_close_is_durable() {
        let mut l = Lottery::new(2, 7574);
        stage(&mut l, 1, &[7574, 1, 7574]);
        l.commit();
        assert_eq!(answered(&l, 1), None, "open: more bets may win");
        assert_eq!(l.done(1, 3), DoneVerdict::Close);
        assert_eq!(answered(&l, 1), None, "the close is only staged");
        l.rollback();
        assert_eq!(answered(&l, 1), None);
        assert_eq!(l.done(1, 3), DoneVerdict::Close);
        l.commit();
        assert_eq!(answered(&l, 1), Some(vec!["0".into(), "2".into()]));
        assert_eq!(answered(&l, 2), None);
        assert_eq!(answered(&l, 3), None, "no such agency");
        assert_eq!(answered(&l, 0), None, "no such agency");
    }

    #[test]
    fn an_adopted_draw_answers_the_stores_winners_not_the_counted_ones() {
        let mut l = Lottery::new(2, 7574);
        l.leave_draw_to_store();
        stage(&mut l, 1, &[7574, 1]);
        l.done(1, 2);
        l.commit();
        let drawn = vec![
            RecoveredAgency {
                stored: 2,
                closed: true,
                winners: vec!["0".into()],
            },
            RecoveredAgency {
                stored: 9,
                closed: true,
                winners: vec!["9".into()],
            },
        ];
        assert!(l.adopt_draw(drawn));
        assert_eq!(answered(&l, 1), Some(vec!["0".into()]));
        assert_eq!(answered(&l, 2), Some(vec!["9".into()]));
    }

    #[test]
    fn a_recovered_closed_agency_is_answered_with_its_recovered_winners() {
        let l = Lottery::recovered(
            vec![
                RecoveredAgency {
                    stored: 3,
                    closed: true,
                    winners: vec!["7".into()],
                },
                RecoveredAgency {
                    stored: 1,
                    closed: false,
                    winners: vec![],
                },
            ],
            7574,
        );
        assert_eq!(answered(&l, 1), Some(vec!["7".into()]));
        assert_eq!(answered(&l, 2), None);
    }
}
