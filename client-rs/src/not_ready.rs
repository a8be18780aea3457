//! When to ask for the winners again after a parked `GET_WINNERS`
//! (wait=1) comes back `NOT_READY`. Pure: the caller measures the wait.
//!
//! The central answers a parked request at its park timeout, and the agency
//! asks again at once: the next park is the wait. An answer that comes well
//! before that (in less than half the park timeout: the central did not
//! park the request, its parked limit for the agency being reached, or it
//! parks for less than the agency expects) would make asking at once a busy
//! loop. Then the agency pauses first, from [`FIRST_PAUSE`], doubled at
//! each such answer in a row, up to [`MAX_PAUSE`]; a request that stays
//! parked for a good part of the timeout starts the pauses over.

use std::time::Duration;

/// The pause after the first early `NOT_READY` of a row.
pub const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause: the most an agency learns of the draw late by, when
/// the central does not park its requests.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct NotReadyPause {
    /// The central's park timeout, as the agency is configured to expect it.
    park_timeout: Duration,
    /// The pause after the next early answer.
    next: Duration,
}

impl NotReadyPause {
    pub fn new(park_timeout: Duration) -> NotReadyPause {
        NotReadyPause {
            park_timeout,
            next: FIRST_PAUSE,
        }
    }

    /// A parked request came back `NOT_READY` `waited` after it was sent:
    /// how long to pause before asking again.
    pub fn after(&mut self, waited: Duration) -> Duration {
        if waited >= self.park_timeout / 2 {
            self.next = FIRST_PAUSE;
            return Duration::ZERO;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_PAUSE);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARK: Duration = Duration::from_secs(30);

    #[test]
    fn an_answer_at_the_park_timeout_is_asked_again_at_once() {
        let mut p = NotReadyPause::new(PARK);
        assert_eq!(p.after(PARK), Duration::ZERO);
        assert_eq!(p.after(PARK / 2), Duration::ZERO);
    }

    #[test]
    fn early_answers_in_a_row_pause_longer_each_time_up_to_the_cap() {
        let mut p = NotReadyPause::new(PARK);
        let pauses: Vec<_> = (0..6).map(|_| p.after(Duration::ZERO)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            pauses,
            [ms(100), ms(200), ms(400), ms(800), MAX_PAUSE, MAX_PAUSE]
        );
    }

    #[test]
    fn a_request_that_stays_parked_starts_the_pauses_over() {
        let mut p = NotReadyPause::new(PARK);
        p.after(Duration::ZERO);
        p.after(Duration::ZERO);
        assert_eq!(p.after(PARK), Duration::ZERO);
        assert_eq!(p.after(Duration::from_millis(5)), FIRST_PAUSE);
    }
}
