//! A budget of log lines per window of time, for lines one per connection
//! that a crowd of peers could multiply (refusals at the connection cap,
//! idle closes, park refusals). Pure: the caller passes the time.
//!
//! Invariant: at most `per_window` lines are logged in any window; the
//! lines past that are counted, and the count is handed out once, when
//! the window they fell in has ended, for one summary line.
//!
//! A [`Tally`] is for events that get no line of their own at all (a
//! retried batch): they are only counted, and the count is handed out for
//! one line at most once per window.

use std::time::{Duration, Instant};

/// Lines of one kind logged per second before the rest are only counted.
pub const LINES_PER_SECOND: u32 = 10;

#[derive(Debug)]
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    /// When the current window opened (at its first line).
    opened: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget::new(LINES_PER_SECOND, Duration::from_secs(1))
    }
}

impl LogBudget {
    pub fn new(per_window: u32, window: Duration) -> LogBudget {
        LogBudget {
            per_window,
            window,
            opened: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Counts a line at `now`; whether it is to be logged.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.opened.is_none_or(|at| now >= at + self.window) {
            self.opened = Some(now);
            self.logged = 0;
        }
        if self.logged < self.per_window {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// How many lines were only counted, once the window they fell in has
    /// ended (then the count starts again from zero).
    pub fn take_suppressed(&mut self, now: Instant) -> Option<u64> {
        let ended = self.opened.is_some_and(|at| now >= at + self.window);
        if self.suppressed > 0 && ended {
            Some(std::mem::take(&mut self.suppressed))
        } else {
            None
        }
    }
}

/// Events counted for one summary line at most once per window: the first
/// count after a quiet window is handed out at once, the next ones once
/// their window has ended.
#[derive(Debug)]
pub struct Tally {
    window: Duration,
    /// When the last count was handed out.
    handed_at: Option<Instant>,
    count: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new(Duration::from_secs(1))
    }
}

impl Tally {
    pub fn new(window: Duration) -> Tally {
        Tally {
            window,
            handed_at: None,
            count: 0,
        }
    }

    pub fn add(&mut self, n: u64) {
        self.count += n;
    }

    /// Whether events wait to be handed out.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The count to log at `now`, if any is due (then it starts again from zero).
    pub fn take_due(&mut self, now: Instant) -> Option<u64> {
        let quiet = self.handed_at.is_none_or(|at| now >= at + self.window);
        if self.count > 0 && quiet {
            self.handed_at = Some(now);
            Some(std::mem::take(&mut self.count))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn lines_past_the_budget_of_a_window_are_counted_not_logged() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(3, SECOND);
        let logged = (0..10)
            .filter(|i| b.allow(t0 + Duration::from_millis(*i)))
            .count();
        assert_eq!(logged, 3);
        assert_eq!(b.take_suppressed(t0 + Duration::from_millis(500)), None);
        assert_eq!(b.take_suppressed(t0 + SECOND), Some(7));
        assert_eq!(b.take_suppressed(t0 + 2 * SECOND), None, "counted once");
    }

    #[test]
    fn a_new_window_logs_again() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(1, SECOND);
        assert!(b.allow(t0));
        assert!(!b.allow(t0 + Duration::from_millis(999)));
        assert!(b.allow(t0 + SECOND));
        assert!(!b.allow(t0 + SECOND));
        assert_eq!(b.take_suppressed(t0 + 2 * SECOND), Some(2));
    }

    #[test]
    fn a_tally_hands_out_its_count_at_most_once_per_window() {
        let t0 = Instant::now();
        let mut t = Tally::new(SECOND);
        assert_eq!(t.take_due(t0), None, "nothing counted");
        t.add(1);
        assert_eq!(t.take_due(t0), Some(1), "the first count goes at once");
        let mut handed = Vec::new();
        for ms in 1..2_500 {
            t.add(1);
            handed.extend(t.take_due(t0 + Duration::from_millis(ms)));
        }
        assert_eq!(handed, [1_000, 1_000], "once a second, nothing lost");
        assert_eq!(t.take_due(t0 + 3 * SECOND), Some(499));
        assert!(t.is_empty());
    }

    #[test]
    fn nothing_suppressed_gives_no_summary() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(5, SECOND);
        assert!(b.allow(t0));
        assert_eq!(b.take_suppressed(t0 + 5 * SECOND), None);
    }
}
