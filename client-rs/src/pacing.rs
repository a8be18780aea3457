//! The course's `loop.period`: a paced agency takes one step at a time and
//! waits a period after each answer before its next step.
//!
//! The steps are the agency's visible moves: each batch, the DONE, asking
//! for the winners, and reporting them (`consulta_ganadores`). The last one
//! is paced too, and that is the point of it: a parked question is answered
//! within a millisecond of the draw, and `docker compose logs -f` merges the
//! containers' streams as they come, so without a pause an agency's winners
//! line can be printed before the central's `sorteo`. With one, the draw and
//! every report are a period apart in any reader that follows the run live.
//! Unpaced (no `loop.period`), no step waits.

use std::time::Duration;

use crate::stop::Stop;

pub struct Pacing {
    period: Option<Duration>,
    /// Whether a step was taken: the first one does not wait.
    stepped: bool,
}

impl Pacing {
    pub fn new(period: Option<Duration>) -> Pacing {
        Pacing {
            period,
            stepped: false,
        }
    }

    /// The pause between steps, if the agency is paced.
    pub fn period(&self) -> Option<Duration> {
        self.period
    }

    /// How long the next step must wait (none for the first, or unpaced).
    fn wait_before_next(&mut self) -> Duration {
        let wait = match self.period {
            Some(period) if self.stepped => period,
            _ => Duration::ZERO,
        };
        self.stepped = true;
        wait
    }

    /// Waits before a step; false when a stop signal cut the wait short.
    pub fn step(&mut self, stop: &Stop) -> bool {
        let wait = self.wait_before_next();
        wait.is_zero() || stop.sleep(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(150);

    #[test]
    fn a_paced_agency_waits_a_period_before_every_step_but_the_first() {
        let mut pacing = Pacing::new(Some(PERIOD));
        assert_eq!(pacing.wait_before_next(), Duration::ZERO);
        for _ in 0..4 {
            assert_eq!(pacing.wait_before_next(), PERIOD);
        }
    }

    #[test]
    fn an_unpaced_agency_never_waits() {
        let mut pacing = Pacing::new(None);
        for _ in 0..3 {
            assert_eq!(pacing.wait_before_next(), Duration::ZERO);
        }
        assert_eq!(pacing.period(), None);
    }

    #[test]
    fn a_stop_during_the_pause_ends_the_step_at_once() {
        let stop = Stop::default();
        let mut pacing = Pacing::new(Some(Duration::from_secs(30)));
        assert!(pacing.step(&stop), "the first step does not wait");
        stop.request();
        assert!(!pacing.step(&stop));
    }
}
