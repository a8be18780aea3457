//! The agency's log: timestamped lines on stderr, like the central's
//! (`simple_logger`), printed above the live progress line while one is
//! shown ([`crate::progress`]), so that a line is never cut by the bar nor
//! the bar left half-drawn in the middle of the log.
//!
//! The live line is registered here while it is on screen; each log line
//! then goes out through `ProgressBar::suspend`, which clears the bar,
//! prints the line and draws the bar again below it.

use std::sync::Mutex;

use indicatif::ProgressBar;
use log::{LevelFilter, Log, Metadata, Record};
use simple_logger::SimpleLogger;

/// The live line on screen, if any.
static LIVE_LINE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Starts logging at `level`.
pub fn init(level: LevelFilter) {
    let logger = SimpleLogger::new().with_level(level).with_utc_timestamps();
    log::set_max_level(logger.max_level());
    // Only fails if a logger is already set, which cannot happen here.
    let _ = log::set_boxed_logger(Box::new(AboveLiveLine(logger)));
}

/// From now on, log lines are printed above `bar`.
pub fn show_above(bar: &ProgressBar) {
    *live_line() = Some(bar.clone());
}

/// The live line is gone: log lines are printed as they come.
pub fn stop_showing() {
    *live_line() = None;
}

fn live_line() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    // A panic elsewhere while holding the lock leaves a usable value.
    LIVE_LINE.lock().unwrap_or_else(|e| e.into_inner())
}

struct AboveLiveLine(SimpleLogger);

impl Log for AboveLiveLine {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.0.enabled(record.metadata()) {
            return;
        }
        // Cloned out of the lock: printing may take a while.
        let bar = live_line().clone();
        match bar {
            Some(bar) => bar.suspend(|| self.0.log(record)),
            None => self.0.log(record),
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}
