//! The stop request: SIGTERM or SIGINT sets a flag that every wait of the
//! agency (socket reads and writes, back-off sleeps, the bets file) checks.
//!
//! The handler only stores the signal number; the agency notices it within
//! one [`crate::connection::POLL`] and then closes its socket and file and
//! exits 0 by itself, so nothing is cut half-way through a frame.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Shared flag holding the number of the first stop signal seen (0: none).
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicUsize>);

impl Stop {
    /// Registers SIGTERM and SIGINT to set this flag.
    pub fn install() -> io::Result<Stop> {
        let stop = Stop::default();
        for signal in [SIGTERM, SIGINT] {
            signal_hook::flag::register_usize(signal, Arc::clone(&stop.0), signal as usize)?;
        }
        Ok(stop)
    }

    /// The name of the signal that asked the agency to stop, if one did.
    pub fn requested(&self) -> Option<&'static str> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n if n == SIGTERM as usize => Some("SIGTERM"),
            n if n == SIGINT as usize => Some("SIGINT"),
            _ => Some("signal"),
        }
    }

    /// Sleeps for `duration` unless a stop is requested first; returns
    /// whether the whole sleep happened.
    pub fn sleep(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        loop {
            if self.requested().is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }
}

#[cfg(test)]
impl Stop {
    /// Stops as if a SIGTERM had arrived.
    pub fn request(&self) {
        self.0.store(SIGTERM as usize, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_stop_cuts_a_sleep_short() {
        let stop = Stop::default();
        assert!(stop.sleep(Duration::from_millis(1)));
        stop.request();
        let start = Instant::now();
        assert!(!stop.sleep(Duration::from_secs(5)));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(stop.requested(), Some("SIGTERM"));
    }
}
