//! The agencies' traffic, encoded before the clock starts.
//!
//! Every agency's bets become its `BATCH` frames, back to back in one buffer,
//! so the driver only hands slices of it to the socket: no encoding and no
//! copying while the central is being measured. Alongside, what the central
//! must answer: the stored count after each batch and the documents of the
//! agency's winning bets, in the order it sends them.

use std::path::Path;
use std::thread;

use anyhow::{Context, Result, bail};
use lottery_proto::wire::{BET_FIXED, BetRef, batch_fits, encode_batch};

use crate::agency_file::{file_name, read_agency_file};
use crate::synth::Synth;

/// One agency's frames and the answers they must get.
#[derive(Clone, Debug, Default)]
pub struct AgencyLoad {
    pub agency: u32,
    /// All the agency's `BATCH` frames, in order.
    pub bytes: Vec<u8>,
    /// The offset in `bytes` just past each batch.
    pub batch_ends: Vec<usize>,
    /// The agency's stored count once each batch is acknowledged.
    pub stored_after: Vec<u32>,
    pub bets: u32,
    /// The documents of the winning bets, in the order they were sent.
    pub winners: Vec<String>,
}

impl AgencyLoad {
    pub fn batches(&self) -> usize {
        self.batch_ends.len()
    }
}

/// The traffic of every agency, agency `i` at index `i - 1`.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub agencies: Vec<AgencyLoad>,
}

impl Workload {
    /// Agencies `1..=agencies` from `synth`, encoded on every core.
    pub fn synthetic(synth: &Synth, agencies: u32, max_batch: usize) -> Workload {
        let threads = thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let per_thread = agencies.div_ceil(threads).max(1);
        let chunks: Vec<Vec<AgencyLoad>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let from = 1 + t * per_thread;
                    let to = (from + per_thread).min(agencies + 1);
                    scope.spawn(move || {
                        (from..to)
                            .map(|agency| {
                                encode_agency(
                                    agency,
                                    synth.bets_of(agency),
                                    |b| b.as_ref(),
                                    max_batch,
                                    synth.winning_number(),
                                )
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("encoder thread panicked"))
                .collect()
        });
        Workload {
            agencies: chunks.into_iter().flatten().collect(),
        }
    }

    /// Agencies `1..=agencies` from `DIR/agency-{i}.csv`.
    pub fn from_dir(
        dir: &Path,
        agencies: u32,
        max_batch: usize,
        winning_number: u16,
    ) -> Result<Workload> {
        let mut loads = Vec::with_capacity(agencies as usize);
        for agency in 1..=agencies {
            let path = dir.join(file_name(agency));
            let bets = read_agency_file(&path)?;
            if bets.len() > u32::MAX as usize {
                bail!("{}: more bets than one agency can send", path.display());
            }
            loads.push(encode_agency(
                agency,
                bets.into_iter(),
                |b| b.as_ref(),
                max_batch,
                winning_number,
            ));
        }
        Ok(Workload { agencies: loads })
    }

    pub fn total_bets(&self) -> u64 {
        self.agencies.iter().map(|a| u64::from(a.bets)).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.agencies.iter().map(|a| a.bytes.len() as u64).sum()
    }

    pub fn total_batches(&self) -> u64 {
        self.agencies.iter().map(|a| a.batches() as u64).sum()
    }

    pub fn total_winners(&self) -> u64 {
        self.agencies.iter().map(|a| a.winners.len() as u64).sum()
    }
}

/// How many agency files `DIR` holds: `agency-1.csv`, `agency-2.csv`, ... without a gap.
pub fn count_agency_files(dir: &Path) -> Result<u32> {
    let mut n = 0;
    while dir.join(file_name(n + 1)).exists() {
        n += 1;
    }
    if n == 0 {
        return Err(anyhow::anyhow!("no {} in {}", file_name(1), dir.display())).context("--data");
    }
    Ok(n)
}

/// Encodes an agency's bets as `BATCH` frames of at most `max_batch` bets,
/// fewer where the 8 kB frame limit says so.
fn encode_agency<T>(
    agency: u32,
    bets: impl Iterator<Item = T>,
    as_ref: impl Fn(&T) -> BetRef<'_>,
    max_batch: usize,
    winning_number: u16,
) -> AgencyLoad {
    let max_batch = max_batch.clamp(1, u16::MAX as usize);
    let mut load = AgencyLoad {
        agency,
        ..AgencyLoad::default()
    };
    let mut pending: Vec<T> = Vec::with_capacity(max_batch.min(1024));
    let mut pending_len = 0;
    let flush = |load: &mut AgencyLoad, pending: &mut Vec<T>| {
        if pending.is_empty() {
            return;
        }
        let refs: Vec<BetRef<'_>> = pending.iter().map(&as_ref).collect();
        encode_batch(&mut load.bytes, agency, load.bets, &refs);
        load.bets += refs.len() as u32;
        load.batch_ends.push(load.bytes.len());
        load.stored_after.push(load.bets);
        drop(refs);
        pending.clear();
    };
    for bet in bets {
        let r = as_ref(&bet);
        let len = BET_FIXED + r.first_name.len() + r.last_name.len() + r.document.len();
        if r.number == winning_number {
            load.winners.push(r.document.to_owned());
        }
        if pending.len() == max_batch || !batch_fits(pending_len + len) {
            flush(&mut load, &mut pending);
            pending_len = 0;
        }
        pending_len += len;
        pending.push(bet);
    }
    flush(&mut load, &mut pending);
    load
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::WinnerPlan;
    use lottery_proto::wire::{Frame, MAX_FRAME, decode};

    #[test]
    fn batches_fill_frames_and_replay_every_bet_in_order() {
        let synth = Synth::new(2, 3_000, WinnerPlan::Fixed(5));
        let w = Workload::synthetic(&synth, 3, usize::MAX);
        assert_eq!(w.agencies.len(), 3);
        for (i, load) in w.agencies.iter().enumerate() {
            let agency = i as u32 + 1;
            assert_eq!(load.agency, agency);
            assert_eq!(load.bets, 3_000);
            let mut expected = synth.bets_of(agency);
            let mut at = 0;
            for (b, &end) in load.batch_ends.iter().enumerate() {
                let (frame, n) = decode(&load.bytes[at..]).unwrap().unwrap();
                assert_eq!(at + n, end);
                assert!(n <= MAX_FRAME);
                let Frame::Batch {
                    agency: a,
                    first,
                    bets,
                } = frame
                else {
                    panic!("{frame:?}")
                };
                assert_eq!(a, agency);
                assert_eq!(first + bets.len() as u32, load.stored_after[b]);
                for got in bets {
                    let want = expected.next().unwrap();
                    assert_eq!(got.document, want.document().as_bytes());
                    assert_eq!(got.first_name, want.first_name.as_bytes());
                }
                at = end;
            }
            assert!(expected.next().is_none());
            assert_eq!(load.winners.len(), 5);
        }
        // Full frames: a batch could not have taken one more bet.
        assert!(w.agencies[0].batch_ends[0] > MAX_FRAME - 60);
    }

    #[test]
    fn a_batch_size_caps_the_bets_per_frame() {
        let synth = Synth::new(2, 1_001, WinnerPlan::Varied);
        let w = Workload::synthetic(&synth, 1, 100);
        assert_eq!(w.agencies[0].batches(), 11);
        assert_eq!(w.agencies[0].stored_after[..2], [100, 200]);
        assert_eq!(*w.agencies[0].stored_after.last().unwrap(), 1_001);
    }

    #[test]
    fn winners_are_the_documents_of_the_winning_bets_in_order() {
        let synth = Synth::new(6, 4_000, WinnerPlan::Fixed(7));
        let w = Workload::synthetic(&synth, 2, usize::MAX);
        let want: Vec<String> = synth
            .bets_of(2)
            .filter(|b| b.number == synth.winning_number())
            .map(|b| b.document().to_owned())
            .collect();
        assert_eq!(w.agencies[1].winners, want);
        assert_eq!(w.total_winners(), 14);
    }

    #[test]
    fn many_agencies_come_out_in_order_whatever_the_thread_split() {
        let synth = Synth::new(3, 10, WinnerPlan::Varied);
        let w = Workload::synthetic(&synth, 37, usize::MAX);
        let ids: Vec<u32> = w.agencies.iter().map(|a| a.agency).collect();
        assert_eq!(ids, (1..=37).collect::<Vec<_>>());
    }
}
