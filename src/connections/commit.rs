//! The group commit settled across the connections: the store takes a
//! group's bets and closes (or refuses them), the replies held for it go
//! out as they are or become `ERROR STORAGE`, and a commit that ran the
//! draw wakes every parked request. One module, so the loop and the
//! shutdown settle a commit the same way.
//!
//! A commit may be under way across loop iterations (a store that commits
//! on a thread of its own): the connections whose replies wait for it are
//! *committing*, and stay held until it is over; the other connections'
//! replies, which depend on nothing staged (bets and closes are not staged
//! while a commit is under way), go out at once, answered from the durable
//! state.

use std::time::Instant;

use slab::Slab;

use super::connection::Connection;
use super::parking::{Parking, Wake};
use super::schedule::Schedule;
use crate::central::state::{Central, Commit};

/// What one iteration's commit step did.
#[derive(Debug, Default)]
pub struct Settled {
    /// When the draw ran, and how many parked requests it woke.
    pub woken: Option<(Instant, usize)>,
    /// The store lost acknowledged bets: the central must stop.
    pub fatal: Option<String>,
}

/// The loop's commit step, once per iteration: takes the outcome of the
/// commit under way if it is over, else starts one for what is staged,
/// and settles the replies that may go out.
pub fn commit_group(
    central: &mut Central,
    connections: &mut Slab<Connection>,
    parking: &mut Parking,
    schedule: &mut Schedule,
    now: Instant,
) -> Settled {
    let mut settled = if central.commit_under_way() {
        match central.finish_commit() {
            Some(outcome) => {
                schedule.touch_committing(connections);
                let settled = settle(outcome, central, connections, parking, schedule, now);
                schedule.undefer(connections);
                settled
            }
            None => {
                // Answered from the durable state: nothing these replies
                // count is staged but the group under way.
                schedule.settle_touched(connections, false);
                Settled::default()
            }
        }
    } else {
        match central.start_commit() {
            Some(outcome) => settle(outcome, central, connections, parking, schedule, now),
            None => {
                // Under way: the replies held for it wait; nothing else is held.
                schedule.hold_for_commit(connections);
                Settled::default()
            }
        }
    };
    learn(central, connections, parking, schedule, &mut settled);
    central.ask_counts();
    settled
}

/// What a store shared with other centrals learned: connections waiting
/// for their agency's counts go on, and a draw another central recorded
/// wakes every parked request.
fn learn(
    central: &mut Central,
    connections: &mut Slab<Connection>,
    parking: &mut Parking,
    schedule: &mut Schedule,
    settled: &mut Settled,
) {
    let learned = central.learn();
    if learned.counts {
        schedule.undefer(connections);
    }
    if learned.drew {
        let parked = parking.wake_drawn(connections, schedule);
        settled.woken = Some((Instant::now(), parked));
    }
}

/// A commit is over: parked requests it was to answer are answered, the
/// held replies settled as it went, and, if it ran the draw, every parked
/// request woken.
pub fn settle(
    outcome: Commit,
    central: &Central,
    connections: &mut Slab<Connection>,
    parking: &mut Parking,
    schedule: &mut Schedule,
    now: Instant,
) -> Settled {
    if !outcome.drew {
        // The commit that was to run the draw failed (or, the draw being
        // the store's, did not find every agency closed): wait=0 requests
        // parked behind it get the NOT_READY they would have got without it.
        let lottery = central.lottery();
        let wake = Wake::NotReady {
            done: lottery.closed(),
            expected: lottery.expected(),
        };
        parking.unpark_all(connections, wake, true, now, schedule);
    }
    schedule.settle_touched(connections, outcome.committed);
    let mut settled = Settled {
        woken: None,
        fatal: outcome.fatal,
    };
    if outcome.drew {
        // Every parked request is answered in this iteration's flush (the
        // loop's `answer_unparked`), the frames buffered behind it decoded
        // in the next iteration.
        let parked = parking.wake_drawn(connections, schedule);
        settled.woken = Some((Instant::now(), parked));
    }
    settled
}
