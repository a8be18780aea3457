//! How far the agency is, for whoever watches it run.
//!
//! On a terminal (stderr is one, and `TERM` is set and not `dumb`: where
//! indicatif can draw), a live line: the
//! bets acknowledged of the file's total, as a bar with the rate, then the
//! bets sent, the reconnects and the moves to another central; once the
//! central has closed the agency, a spinner while it waits for the draw.
//! Log lines are printed above it ([`crate::logging`]).
//!
//! Off a terminal (compose, CI, a pipe) there is no bar, whose control
//! sequences would only clutter a log: one `action: progreso` line every
//! `log.progressPeriod` while bets are being sent, the first a period after
//! the start, so a run shorter than a period logs none.
//!
//! The agency reports what happens ([`Progress::sent`], [`Progress::acked`],
//! ...); the counts are atomics so that whoever shows them (the log line's
//! thread, indicatif's ticker) reads them without holding the agency up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use log::info;

use crate::logging;

/// The live line while bets are being sent.
/// The message is cut to the terminal's width, so the line never wraps.
const SENDING: &str =
    "{spinner} {elapsed:>4} [{bar:12}] {pos}/{len} confirmadas, {per_sec:0}, {wide_msg}";
/// The live line while the agency waits for the draw.
const WAITING: &str = "{spinner} {elapsed:>4} {wide_msg}";
/// How often the live line is redrawn when nothing moves (the spinner, the
/// elapsed time and the rate still do).
const TICK: Duration = Duration::from_millis(100);

pub struct Progress {
    counts: Arc<Counts>,
    view: View,
}

enum View {
    Bar(ProgressBar),
    /// The thread that logs the `progreso` line.
    Lines(Option<JoinHandle<()>>),
    Hidden,
}

struct Counts {
    total: usize,
    /// The furthest position of the stream sent.
    sent: AtomicUsize,
    /// The central's count as last heard.
    acked: AtomicUsize,
    /// Connections opened after the first one.
    reconnects: AtomicUsize,
    /// Moves to another central.
    moves: AtomicUsize,
    /// Whether sending is over (the wait for the draw, or the run's end);
    /// the `progreso` thread waits on it.
    sending_over: Mutex<bool>,
    wake: Condvar,
}

/// The counts at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snapshot {
    sent: usize,
    acked: usize,
    total: usize,
    reconnects: usize,
    moves: usize,
}

impl Snapshot {
    /// The line logged every period off a terminal.
    fn log_line(&self) -> String {
        format!(
            "action: progreso | result: in_progress | enviadas: {} | confirmadas: {} | total: {} | reconexiones: {} | cambios_central: {}",
            self.sent, self.acked, self.total, self.reconnects, self.moves
        )
    }

    /// What follows the bar on the live line.
    fn sending_message(&self) -> String {
        format!("enviadas {}{}", self.sent, self.troubles())
    }

    /// The live line while waiting for the draw.
    fn waiting_message(&self) -> String {
        format!(
            "{}/{} confirmadas, esperando el sorteo{}",
            self.acked,
            self.total,
            self.troubles()
        )
    }

    /// Reconnects and moves to another central, once there are any (a
    /// narrow terminal keeps the line short when all goes well).
    fn troubles(&self) -> String {
        let mut text = String::new();
        if self.reconnects > 0 {
            text += &format!(", reconexiones {}", self.reconnects);
        }
        if self.moves > 0 {
            text += &format!(", cambios de central {}", self.moves);
        }
        text
    }
}

impl Counts {
    fn new(total: usize) -> Counts {
        Counts {
            total,
            sent: AtomicUsize::new(0),
            acked: AtomicUsize::new(0),
            reconnects: AtomicUsize::new(0),
            moves: AtomicUsize::new(0),
            sending_over: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            sent: self.sent.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            total: self.total,
            reconnects: self.reconnects.load(Ordering::Relaxed),
            moves: self.moves.load(Ordering::Relaxed),
        }
    }

    fn end_sending(&self) {
        *self.sending_over.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Logs the `progreso` line every `period` until sending is over.
    fn report_every(&self, period: Duration) {
        let mut next = Instant::now() + period;
        let mut over = self.sending_over.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *over {
                return;
            }
            let now = Instant::now();
            if now >= next {
                drop(over);
                info!("{}", self.snapshot().log_line());
                next += period;
                over = self.sending_over.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            over = self
                .wake
                .wait_timeout(over, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Progress {
    /// Shows the progress of a stream of `total` bets: a live line on a
    /// terminal, else a `progreso` log line every `period`.
    pub fn start(total: usize, period: Duration) -> Progress {
        let counts = Arc::new(Counts::new(total));
        // Hidden off a terminal, or on one that cannot move the cursor.
        let target = ProgressDrawTarget::stderr();
        let view = if !target.is_hidden() {
            let bar = ProgressBar::with_draw_target(Some(total as u64), target);
            bar.set_style(style(SENDING));
            bar.set_message(counts.snapshot().sending_message());
            bar.enable_steady_tick(TICK);
            logging::show_above(&bar);
            View::Bar(bar)
        } else {
            let reporter = Arc::clone(&counts);
            let thread = thread::Builder::new()
                .name("progreso".into())
                .spawn(move || reporter.report_every(period));
            // Without the thread the agency still works; it only says less.
            View::Lines(thread.ok())
        };
        Progress { counts, view }
    }

    /// Shows nothing.
    pub fn hidden() -> Progress {
        Progress {
            counts: Arc::new(Counts::new(0)),
            view: View::Hidden,
        }
    }

    /// The stream has been sent up to position `upto`.
    pub fn sent(&self, upto: usize) {
        self.counts.sent.fetch_max(upto, Ordering::Relaxed);
        self.redraw_message();
    }

    /// The central holds `stored` bets (fewer than before if it lost some).
    pub fn acked(&self, stored: usize) {
        self.counts.acked.store(stored, Ordering::Relaxed);
        if let View::Bar(bar) = &self.view {
            bar.set_position(stored as u64);
        }
    }

    /// A connection was opened after the first one.
    pub fn reconnected(&self) {
        self.counts.reconnects.fetch_add(1, Ordering::Relaxed);
        self.redraw_message();
    }

    /// The agency moved to another central.
    pub fn moved(&self) {
        self.counts.moves.fetch_add(1, Ordering::Relaxed);
        self.redraw_message();
    }

    /// The bets are all stored and the agency closed: only the draw is left.
    pub fn waiting_for_draw(&self) {
        self.counts.end_sending();
        if let View::Bar(bar) = &self.view {
            bar.set_style(style(WAITING));
            bar.set_message(self.counts.snapshot().waiting_message());
        }
    }

    fn redraw_message(&self) {
        if let View::Bar(bar) = &self.view {
            let snapshot = self.counts.snapshot();
            let waiting = *self
                .counts
                .sending_over
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            bar.set_message(if waiting {
                snapshot.waiting_message()
            } else {
                snapshot.sending_message()
            });
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.counts.end_sending();
        match &mut self.view {
            View::Bar(bar) => {
                bar.finish_and_clear();
                logging::stop_showing();
            }
            View::Lines(thread) => {
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
            View::Hidden => {}
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the live line's templates are valid (see the tests)")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: Snapshot = Snapshot {
        sent: 1200,
        acked: 1000,
        total: 5000,
        reconnects: 2,
        moves: 1,
    };

    #[test]
    fn the_progreso_line_keeps_the_log_contract() {
        let line = SNAPSHOT.log_line();
        assert_eq!(
            line,
            "action: progreso | result: in_progress | enviadas: 1200 | confirmadas: 1000 | total: 5000 | reconexiones: 2 | cambios_central: 1"
        );
        for pair in line.split(" | ") {
            let (key, value) = pair.split_once(": ").unwrap();
            assert!(!key.contains(' ') && !value.is_empty(), "{pair}");
        }
    }

    #[test]
    fn the_live_line_says_what_was_sent_and_what_is_left() {
        assert_eq!(
            SNAPSHOT.sending_message(),
            "enviadas 1200, reconexiones 2, cambios de central 1"
        );
        assert_eq!(
            SNAPSHOT.waiting_message(),
            "1000/5000 confirmadas, esperando el sorteo, reconexiones 2, cambios de central 1"
        );
        let smooth = Snapshot {
            reconnects: 0,
            moves: 0,
            ..SNAPSHOT
        };
        assert_eq!(smooth.sending_message(), "enviadas 1200");
        // Both templates parse (`style` would panic otherwise).
        style(SENDING);
        style(WAITING);
    }

    #[test]
    fn the_counts_follow_the_agency_and_a_lost_count_goes_down() {
        let progress = Progress::hidden();
        progress.sent(300);
        progress.sent(100);
        progress.acked(300);
        progress.acked(250);
        progress.reconnected();
        progress.moved();
        let now = progress.counts.snapshot();
        assert_eq!((now.sent, now.acked), (300, 250));
        assert_eq!((now.reconnects, now.moves), (1, 1));
    }

    #[test]
    fn the_progreso_thread_ends_when_sending_does() {
        let counts = Arc::new(Counts::new(10));
        let reporter = Arc::clone(&counts);
        let thread = thread::spawn(move || reporter.report_every(Duration::from_secs(3600)));
        counts.end_sending();
        thread.join().unwrap();
    }
}
