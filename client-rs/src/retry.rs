//! When to try the central again, and when to give up.
//!
//! A *streak* is the time since the central last answered usefully (an
//! ACK, NOT_READY or WINNERS). Failures within a streak wait longer and
//! longer (exponential back-off from [`FIRST_DELAY`], capped at
//! [`MAX_DELAY`]); once a streak has lasted the retry budget
//! (`CLI_CONNECT_TIMEOUT`) the agency gives up. The first retry after a
//! useful answer is immediate, so that a central that closes the connection
//! after every reply costs one reconnect per request and no sleep.

use std::time::{Duration, Instant};

use crate::stop::Stop;

pub const FIRST_DELAY: Duration = Duration::from_millis(50);
pub const MAX_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Retry {
    budget: Duration,
    /// When the current run of failures began; `None` right after progress.
    streak: Option<Instant>,
    delay: Duration,
    failures: u32,
}

/// Why [`Retry::wait`] will not let the agency try again.
#[derive(Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// The retry budget is spent.
    Exhausted { failures: u32, waited: Duration },
    /// A stop signal arrived during the back-off.
    Stopped,
}

impl Retry {
    pub fn new(budget: Duration) -> Retry {
        Retry {
            budget,
            streak: None,
            delay: Duration::ZERO,
            failures: 0,
        }
    }

    /// The central answered usefully: a new streak starts from scratch.
    pub fn progress(&mut self) {
        self.streak = None;
        self.delay = Duration::ZERO;
        self.failures = 0;
    }

    /// An attempt failed; the next one waits at least `at_least`.
    pub fn failed(&mut self, at_least: Duration) {
        self.streak.get_or_insert_with(Instant::now);
        self.delay = if self.failures == 0 {
            Duration::ZERO
        } else if self.delay.is_zero() {
            FIRST_DELAY
        } else {
            (self.delay * 2).min(MAX_DELAY)
        }
        .max(at_least);
        self.failures += 1;
    }

    /// How many attempts failed in the current streak.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// What is left of the budget in the current streak.
    pub fn remaining(&self) -> Duration {
        match self.streak {
            Some(start) => self.budget.saturating_sub(start.elapsed()),
            None => self.budget,
        }
    }

    /// Sleeps the back-off before the next attempt, or says why not to try.
    pub fn wait(&mut self, stop: &Stop) -> Result<(), GiveUp> {
        if let Some(start) = self.streak
            && start.elapsed() >= self.budget
        {
            return Err(GiveUp::Exhausted {
                failures: self.failures,
                waited: start.elapsed(),
            });
        }
        if !stop.sleep(self.delay.min(self.remaining())) {
            return Err(GiveUp::Stopped);
        }
        Ok(())
    }

    /// The back-off the next [`Retry::wait`] will sleep.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_the_second_retry_up_to_the_cap() {
        let mut retry = Retry::new(Duration::from_secs(60));
        let mut delays = Vec::new();
        for _ in 0..8 {
            retry.failed(Duration::ZERO);
            delays.push(retry.delay().as_millis());
        }
        assert_eq!(delays, [0, 50, 100, 200, 400, 800, 1000, 1000]);
        retry.progress();
        retry.failed(Duration::ZERO);
        assert_eq!(retry.delay(), Duration::ZERO);
        retry.failed(Duration::from_millis(300));
        assert_eq!(retry.delay(), Duration::from_millis(300));
    }

    #[test]
    fn a_spent_budget_gives_up_and_progress_renews_it() {
        let mut retry = Retry::new(Duration::from_millis(30));
        let stop = Stop::default();
        retry.failed(Duration::ZERO);
        assert_eq!(retry.wait(&stop), Ok(()));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(
            retry.wait(&stop),
            Err(GiveUp::Exhausted { failures: 1, .. })
        ));
        retry.progress();
        assert_eq!(retry.wait(&stop), Ok(()));
    }
}
