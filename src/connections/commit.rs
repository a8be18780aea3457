//! The group commit settled across the connections: the store takes this
//! iteration's bets and closes (or refuses them), the replies held for it
//! go out as they are or become `ERROR STORAGE`, and a commit that ran the
//! draw wakes every parked request. One function, so the loop and the
//! shutdown settle a commit the same way.

use std::time::Instant;

use slab::Slab;

use super::connection::Connection;
use super::parking::{Parking, Wake};
use super::schedule::Schedule;
use crate::central::state::Central;

/// Commits the group and settles it. Returns, when the commit ran the
/// draw, when that was and how many parked requests it woke.
pub fn commit_group(
    central: &mut Central,
    connections: &mut Slab<Connection>,
    parking: &mut Parking,
    schedule: &mut Schedule,
    now: Instant,
) -> Option<(Instant, usize)> {
    let outcome = central.commit();
    if !outcome.committed {
        // The commit that was to run the draw failed: wait=0 requests
        // parked behind it get the NOT_READY they would have got without it.
        let lottery = central.lottery();
        let wake = Wake::NotReady {
            done: lottery.closed(),
            expected: lottery.expected(),
        };
        parking.unpark_all(connections, wake, true, now, schedule);
    }
    schedule.settle_touched(connections, outcome.committed);
    if !outcome.drew {
        return None;
    }
    // Every parked request is answered in this iteration's flush (the
    // loop's `answer_unparked`), the frames buffered behind it decoded in
    // the next iteration.
    let parked = parking.wake_drawn(connections, schedule);
    Some((Instant::now(), parked))
}
