//! The counters the central keeps of its own work, for `/metrics` and
//! `/status`: plain numbers bumped where the work is done (pure, no I/O, no
//! clock). A bump is an add to a field, so keeping them costs the loop
//! nothing it would notice; they are read only when a scrape asks.
//!
//! What is counted here is what no other state remembers: the batches and
//! their outcomes, the group commits and how long they took, the storage
//! failures. What the lottery itself holds (stored bets, closed agencies,
//! the draw, the winners) is read from it at scrape time, not counted twice.

use std::time::Duration;

/// Upper bounds of the batch size buckets (bets in a batch).
pub const BATCH_SIZE_BOUNDS: &[f64] = &[1.0, 10.0, 25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 500.0];

/// Upper bounds of the commit duration buckets (seconds): from a page-cache
/// `fdatasync` to a database that waits for its standby.
pub const COMMIT_SECONDS_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The `ERROR` codes a batch can be refused with, by their wire number
/// (index 0 unused): `PROTOCOL.md` numbers them from 1 to 11.
pub const ERROR_CODES: usize = 12;

/// Observations in fixed buckets, as Prometheus keeps a histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is above every bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let at = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[at] += 1;
        self.sum += value;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// `(upper bound, observations in that bucket)`, not cumulative, the
    /// last bound `+Inf`.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect()
    }
}

/// What the central counted of its batches, commits and store.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Batches whose bets a commit made durable.
    pub batches_stored: u64,
    /// Batches whose bets were all stored already (ACKed again).
    pub batches_retried: u64,
    /// Batches refused, by `ERROR` code (`STORAGE` when their commit failed).
    pub batches_refused: [u64; ERROR_CODES],
    /// Bets in each stored batch.
    pub batch_size: Histogram,
    /// Group commits that made their group durable.
    pub commits: u64,
    /// Group commits the store refused (each one a storage failure).
    pub commits_failed: u64,
    /// How long each commit took, successful or not: the `fdatasync` of the
    /// CSV store, or from its start to its outcome for PostgreSQL.
    pub commit_seconds: Histogram,
    /// Commits that succeeded after one or more failed ones: the store
    /// came back (for PostgreSQL, reconnected).
    pub store_recoveries: u64,
}

impl Default for Figures {
    fn default() -> Self {
        Figures {
            batches_stored: 0,
            batches_retried: 0,
            batches_refused: [0; ERROR_CODES],
            batch_size: Histogram::new(BATCH_SIZE_BOUNDS),
            commits: 0,
            commits_failed: 0,
            commit_seconds: Histogram::new(COMMIT_SECONDS_BOUNDS),
            store_recoveries: 0,
        }
    }
}

impl Figures {
    /// A batch of `bets` bets became durable.
    pub fn batch_stored(&mut self, bets: u32) {
        self.batches_stored += 1;
        self.batch_size.observe(f64::from(bets));
    }

    /// A batch was answered `ERROR` with the code numbered `code`.
    pub fn batch_refused(&mut self, code: u8) {
        if let Some(n) = self.batches_refused.get_mut(code as usize) {
            *n += 1;
        }
    }

    /// A group commit is over after `took`; `recovered`: it is the first
    /// success after failures.
    pub fn commit_over(&mut self, committed: bool, took: Duration, recovered: bool) {
        self.commit_seconds.observe(took.as_secs_f64());
        if committed {
            self.commits += 1;
            self.store_recoveries += u64::from(recovered);
        } else {
            self.commits_failed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_falls_in_the_first_bucket_whose_bound_holds_it() {
        let mut h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 1.5, 10.0, 11.0] {
            h.observe(v);
        }
        assert_eq!(h.buckets(), vec![(1.0, 2), (10.0, 2), (f64::INFINITY, 1)]);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 24.0);
    }

    #[test]
    fn commits_and_refusals_are_counted_by_outcome() {
        let mut f = Figures::default();
        f.commit_over(true, Duration::from_millis(2), false);
        f.commit_over(false, Duration::from_millis(3), false);
        f.commit_over(true, Duration::from_millis(1), true);
        assert_eq!((f.commits, f.commits_failed, f.store_recoveries), (2, 1, 1));
        assert_eq!(f.commit_seconds.count(), 3);
        f.batch_refused(7);
        f.batch_refused(200);
        assert_eq!(f.batches_refused[7], 1);
        assert_eq!(f.batches_refused.iter().sum::<u64>(), 1);
    }
}
