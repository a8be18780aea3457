//! A run's figures: computed from what the driver saw, printed as a table,
//! written as JSON, summed up in one line.
//!
//! Units: MB is 10^6 bytes everywhere (throughput and RSS alike); latencies
//! are in µs, times around the draw in ms.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::driver::{AckSample, Outcome};

/// What the run cost the central's process and the bench's own, as far as
/// `/proc` tells.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunCosts {
    pub peak_rss_kb: Option<u64>,
    /// RSS with every agency but the last parked, just before the last DONE.
    pub parked_rss_kb: Option<u64>,
    /// The central's CPU time while the agencies connected and sent their bets.
    pub cpu_seconds: Option<f64>,
    /// The bench's own CPU time over the same span: near a whole core, the
    /// bench and not the central would be what limits the figures.
    pub bench_cpu_seconds: Option<f64>,
    /// The scheduler's counters of the central's thread and of the bench's,
    /// from every agency parked to the last DONE's ACK (the draw) and from
    /// there to the last WINNERS read (the wake-up).
    #[serde(skip)]
    pub draw_central: Option<crate::procfs::Sched>,
    #[serde(skip)]
    pub draw_bench: Option<crate::procfs::Sched>,
    #[serde(skip)]
    pub wakeup_central: Option<crate::procfs::Sched>,
    #[serde(skip)]
    pub wakeup_bench: Option<crate::procfs::Sched>,
    /// The host's steal over the wake-up, in ms ([`crate::procfs::steal_ms`]).
    #[serde(skip)]
    pub wakeup_steal_ms: Option<f64>,
}

/// One slice of the ingest, for the chart.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Interval {
    /// The slice's end, in seconds since the ingest started.
    pub t_s: f64,
    pub bets_per_s: f64,
    pub ack_p50_us: u64,
    pub ack_p99_us: u64,
    pub ack_p999_us: u64,
}

/// Everything a run reports; the JSON file is this, serialized.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub name: String,
    /// `plain` (TCP) or `tls` (mutual TLS 1.3).
    pub transport: String,
    pub agencies: u32,
    pub bets: u64,
    pub batches: u64,
    pub window: usize,
    /// The ingest: from the first batch written to the last batch acknowledged.
    pub seconds: f64,
    pub bets_per_s: f64,
    /// Bets per second from the ACK that brought the count to 10% of the
    /// bets to the one that brought it to 90%: the rate with the pipeline
    /// full, without its fill at the start and its drain at the end (a
    /// fixed cost that weighs on a short run).
    pub steady_bets_per_s: f64,
    pub mb_per_s: f64,
    pub ack_p50_us: u64,
    pub ack_p99_us: u64,
    pub ack_p999_us: u64,
    pub ack_max_us: u64,
    /// From the first connect to the last agency ready to send: over TLS,
    /// the time the whole set of handshakes took.
    pub connect_ms: f64,
    /// Per agency, from its connect to its being ready (TCP connect, plus
    /// the TLS handshake over TLS); queueing behind the others included.
    pub handshake_p50_ms: f64,
    pub handshake_p99_ms: f64,
    pub handshake_max_ms: f64,
    /// From the last DONE's ACK to the last WINNERS answer.
    pub draw_to_last_winner_ms: f64,
    /// From the last DONE written to the last WINNERS answer.
    pub done_to_last_winner_ms: f64,
    /// Per parked agency, from the last DONE's ACK to its own WINNERS.
    pub wakeup_p50_ms: f64,
    pub wakeup_p99_ms: f64,
    /// Of the time from the last DONE to the last winner, how much the bench
    /// spent waiting for the central rather than reading answers.
    pub bench_waiting_after_done_ms: f64,
    pub winners: u64,
    pub reasks: u64,
    pub server_peak_rss_mb: Option<f64>,
    pub server_parked_rss_mb: Option<f64>,
    pub server_cpu_s: Option<f64>,
    /// The central's CPU time over the run's wall time, in % of one core.
    pub server_cpu_percent: Option<f64>,
    pub bench_cpu_percent: Option<f64>,
    pub bets_file_rows: Option<u64>,
    pub machine: Machine,
    pub unix_time: u64,
    pub timeline: Vec<Interval>,
}

/// Where the run happened.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute figures as the report is made:
    /// on a shared machine, how much else was running.
    pub load_average: String,
}

impl Machine {
    pub fn this_one() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".into(), |(_, v)| v.trim().to_string());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let load_average = fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            load_average,
        }
    }
}

/// The settings of the run that the report repeats.
#[derive(Clone, Debug)]
pub struct RunShape {
    pub name: String,
    pub transport: String,
    pub agencies: u32,
    pub batches: u64,
    pub window: usize,
    /// The wall time of the connect and ingest phases, for the CPU shares.
    pub wall: Duration,
}

impl Report {
    pub fn new(
        shape: &RunShape,
        outcome: &Outcome,
        cost: &RunCosts,
        bets_file_rows: Option<u64>,
    ) -> Report {
        let seconds = outcome
            .ingest_end
            .duration_since(outcome.ingest_start)
            .as_secs_f64()
            .max(1e-9);
        let bets: u64 = outcome.acks.iter().map(|a| u64::from(a.bets)).sum();
        let hist = histogram(outcome.acks.iter().map(|a| a.latency_us));
        let last = outcome.last_winners();
        let ms = |later: Instant, earlier: Instant| {
            later.saturating_duration_since(earlier).as_secs_f64() * 1e3
        };
        let parked = &outcome.winners_at[..outcome.winners_at.len() - 1];
        let mut wakeups: Vec<f64> = parked
            .iter()
            .map(|&t| ms(t, outcome.last_done_acked))
            .collect();
        wakeups.sort_by(f64::total_cmp);
        let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
        let mut handshakes: Vec<f64> = outcome
            .handshakes
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        handshakes.sort_by(f64::total_cmp);
        Report {
            name: shape.name.clone(),
            transport: shape.transport.clone(),
            agencies: shape.agencies,
            bets,
            batches: shape.batches,
            window: shape.window,
            seconds,
            bets_per_s: bets as f64 / seconds,
            steady_bets_per_s: steady_rate(&outcome.acks),
            mb_per_s: outcome.bytes_sent as f64 / 1e6 / seconds,
            ack_p50_us: hist.value_at_quantile(0.5),
            ack_p99_us: hist.value_at_quantile(0.99),
            ack_p999_us: hist.value_at_quantile(0.999),
            ack_max_us: hist.max(),
            connect_ms: outcome.connect.as_secs_f64() * 1e3,
            handshake_p50_ms: quantile(&handshakes, 0.5),
            handshake_p99_ms: quantile(&handshakes, 0.99),
            handshake_max_ms: handshakes.last().copied().unwrap_or(0.0),
            draw_to_last_winner_ms: ms(last, outcome.last_done_acked),
            done_to_last_winner_ms: ms(last, outcome.last_done_sent),
            wakeup_p50_ms: quantile(&wakeups, 0.5),
            wakeup_p99_ms: quantile(&wakeups, 0.99),
            bench_waiting_after_done_ms: outcome.draw_poll_wait.as_secs_f64() * 1e3,
            winners: outcome.winners,
            reasks: outcome.reasks,
            server_peak_rss_mb: cost.peak_rss_kb.map(mb),
            server_parked_rss_mb: cost.parked_rss_kb.map(mb),
            server_cpu_s: cost.cpu_seconds,
            server_cpu_percent: cost
                .cpu_seconds
                .map(|s| 100.0 * s / shape.wall.as_secs_f64().max(1e-9)),
            bench_cpu_percent: cost
                .bench_cpu_seconds
                .map(|s| 100.0 * s / shape.wall.as_secs_f64().max(1e-9)),
            bets_file_rows,
            machine: Machine::this_one(),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            timeline: timeline(&outcome.acks, seconds),
        }
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// The figures as an aligned two-column table.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.1} {unit}"));
        let rows: Vec<(&str, String)> = vec![
            ("transport", self.transport.clone()),
            ("agencies", self.agencies.to_string()),
            ("bets", self.bets.to_string()),
            (
                "batches (window)",
                format!("{} ({})", self.batches, self.window),
            ),
            (
                "connect, all agencies",
                format!("{:.1} ms", self.connect_ms),
            ),
            (
                "connect each p50 / p99 / max",
                format!(
                    "{:.2} / {:.2} / {:.2} ms",
                    self.handshake_p50_ms, self.handshake_p99_ms, self.handshake_max_ms
                ),
            ),
            ("ingest", format!("{:.3} s", self.seconds)),
            ("durable bets/s", format!("{:.0}", self.bets_per_s)),
            ("durable MB/s", format!("{:.1}", self.mb_per_s)),
            (
                "ack p50 / p99 / p99.9 / max",
                format!(
                    "{} / {} / {} / {} us",
                    self.ack_p50_us, self.ack_p99_us, self.ack_p999_us, self.ack_max_us
                ),
            ),
            (
                "last DONE ack -> last winner",
                format!("{:.2} ms", self.draw_to_last_winner_ms),
            ),
            (
                "last DONE sent -> last winner",
                format!("{:.2} ms", self.done_to_last_winner_ms),
            ),
            (
                "parked wake-up p50 / p99",
                format!("{:.2} / {:.2} ms", self.wakeup_p50_ms, self.wakeup_p99_ms),
            ),
            (
                "winners (re-asks)",
                format!("{} ({})", self.winners, self.reasks),
            ),
            ("central peak RSS", opt(self.server_peak_rss_mb, "MB")),
            (
                "central RSS, all parked",
                opt(self.server_parked_rss_mb, "MB"),
            ),
            (
                "central CPU, connect+ingest",
                match (self.server_cpu_s, self.server_cpu_percent) {
                    (Some(s), Some(p)) => format!("{s:.2} s ({p:.0}% of one core)"),
                    _ => "n/a".into(),
                },
            ),
            (
                "bench CPU, connect+ingest",
                self.bench_cpu_percent
                    .map_or("n/a".into(), |p| format!("{p:.0}% of one core")),
            ),
            (
                "bets file rows",
                self.bets_file_rows.map_or("n/a".into(), |r| r.to_string()),
            ),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in rows {
            out += &format!("  {key:<width$}  {value}\n");
        }
        out
    }

    /// `bench NAME: N bets, X bets/s, ack p99 Y us, draw->last winner Z ms, rss W MB`
    pub fn summary(&self) -> String {
        format!(
            "bench {}: {} bets, {:.0} bets/s, ack p99 {} us, draw->last winner {:.1} ms, rss {} MB",
            self.name,
            self.bets,
            self.bets_per_s,
            self.ack_p99_us,
            self.draw_to_last_winner_ms,
            self.server_peak_rss_mb
                .map_or("n/a".into(), |m| format!("{m:.1}")),
        )
    }
}

/// The same agencies and bets over plain TCP and over mutual TLS, each
/// against a fresh central: what `bench/run.sh tls` writes as `tls.json`.
#[derive(Clone, Debug, Serialize)]
pub struct TransportComparison {
    pub name: String,
    pub agencies: u32,
    /// Bets of each run.
    pub bets: u64,
    pub plain_bets_per_s: f64,
    pub tls_bets_per_s: f64,
    /// `tls_bets_per_s / plain_bets_per_s`.
    pub ratio: f64,
    /// The ratio the design asks for.
    pub target_ratio: f64,
    /// First connect to last agency ready: TCP connects alone, and TCP
    /// connects plus every TLS handshake.
    pub plain_connect_ms: f64,
    pub tls_handshakes_ms: f64,
    pub tls_handshake_p50_ms: f64,
    pub tls_handshake_p99_ms: f64,
    pub plain: Report,
    pub tls: Report,
}

/// The ratio `bench/run.sh tls` is held to: TLS at least 80% of plain TCP.
pub const TLS_TARGET_RATIO: f64 = 0.8;

impl TransportComparison {
    pub fn new(name: &str, plain: Report, tls: Report) -> TransportComparison {
        TransportComparison {
            name: name.to_string(),
            agencies: tls.agencies,
            bets: tls.bets,
            plain_bets_per_s: plain.bets_per_s,
            tls_bets_per_s: tls.bets_per_s,
            ratio: tls.bets_per_s / plain.bets_per_s.max(1e-9),
            target_ratio: TLS_TARGET_RATIO,
            plain_connect_ms: plain.connect_ms,
            tls_handshakes_ms: tls.connect_ms,
            tls_handshake_p50_ms: tls.handshake_p50_ms,
            tls_handshake_p99_ms: tls.handshake_p99_ms,
            plain,
            tls,
        }
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Plain and TLS side by side.
    pub fn table(&self) -> String {
        let rows = [
            (
                "durable bets/s",
                format!("{:.0}", self.plain_bets_per_s),
                format!("{:.0}", self.tls_bets_per_s),
            ),
            (
                "connect, all agencies",
                format!("{:.1} ms", self.plain.connect_ms),
                format!("{:.1} ms", self.tls.connect_ms),
            ),
            (
                "connect each p50 / p99",
                format!(
                    "{:.2} / {:.2} ms",
                    self.plain.handshake_p50_ms, self.plain.handshake_p99_ms
                ),
                format!(
                    "{:.2} / {:.2} ms",
                    self.tls.handshake_p50_ms, self.tls.handshake_p99_ms
                ),
            ),
            (
                "ack p50 / p99",
                format!("{} / {} us", self.plain.ack_p50_us, self.plain.ack_p99_us),
                format!("{} / {} us", self.tls.ack_p50_us, self.tls.ack_p99_us),
            ),
            (
                "central CPU ns per bet, connect+ingest",
                per_bet_ns(&self.plain),
                per_bet_ns(&self.tls),
            ),
            (
                "bench CPU, connect+ingest",
                percent(self.plain.bench_cpu_percent),
                percent(self.tls.bench_cpu_percent),
            ),
        ];
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let col = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(5);
        let mut out = format!("  {:<width$}  {:<col$}  tls\n", "", "plain");
        for (key, plain, tls) in rows {
            out += &format!("  {key:<width$}  {plain:<col$}  {tls}\n");
        }
        out += &format!(
            "  tls / plain: {:.1}% (target: at least {:.0}%)\n",
            100.0 * self.ratio,
            100.0 * self.target_ratio
        );
        out
    }

    /// `bench NAME: N bets each, plain X bets/s, tls Y bets/s, tls/plain R% (target 80%), A handshakes H ms (p50 P ms, p99 Q ms)`
    pub fn summary(&self) -> String {
        format!(
            "bench {}: {} bets each, plain {:.0} bets/s, tls {:.0} bets/s, tls/plain {:.1}% (target {:.0}%), {} handshakes {:.1} ms (p50 {:.2} ms, p99 {:.2} ms)",
            self.name,
            self.bets,
            self.plain_bets_per_s,
            self.tls_bets_per_s,
            100.0 * self.ratio,
            100.0 * self.target_ratio,
            self.agencies,
            self.tls_handshakes_ms,
            self.tls_handshake_p50_ms,
            self.tls_handshake_p99_ms,
        )
    }
}

fn per_bet_ns(r: &Report) -> String {
    r.server_cpu_s.map_or("n/a".into(), |s| {
        format!("{:.0}", s * 1e9 / (r.bets as f64).max(1.0))
    })
}

fn percent(p: Option<f64>) -> String {
    p.map_or("n/a".into(), |p| format!("{p:.0}% of one core"))
}

fn histogram(values: impl Iterator<Item = u64>) -> Histogram<u64> {
    let mut hist = Histogram::<u64>::new(3).expect("3 significant figures is valid");
    for v in values {
        hist.record(v.max(1))
            .expect("an auto-resizing histogram takes any value");
    }
    hist
}

/// The value below which a fraction `q` of the sorted `values` lies.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// Bets per second between the ACKs that bring the acknowledged count to
/// 10% and to 90% of all the bets (0 with too few ACKs to tell).
pub fn steady_rate(acks: &[AckSample]) -> f64 {
    let mut by_time: Vec<&AckSample> = acks.iter().collect();
    by_time.sort_by_key(|a| a.at_us);
    let total: u64 = by_time.iter().map(|a| u64::from(a.bets)).sum();
    let (mut acked, mut from, mut to) = (0u64, None, None);
    for a in by_time {
        acked += u64::from(a.bets);
        if from.is_none() && acked * 10 >= total {
            from = Some((acked, a.at_us));
        }
        if to.is_none() && acked * 10 >= total * 9 {
            to = Some((acked, a.at_us));
        }
    }
    match (from, to) {
        (Some((a0, t0)), Some((a1, t1))) if t1 > t0 => (a1 - a0) as f64 / ((t1 - t0) as f64 / 1e6),
        _ => 0.0,
    }
}

/// The ingest cut into about 100 slices (none shorter than 10 ms).
pub fn timeline(acks: &[AckSample], seconds: f64) -> Vec<Interval> {
    let width_us = ((seconds * 1e6 / 100.0) as u64).max(10_000);
    let slices = (seconds * 1e6 / width_us as f64).ceil().max(1.0) as usize;
    let mut buckets: Vec<(u64, Vec<u64>)> = vec![(0, Vec::new()); slices];
    for ack in acks {
        let b = ((ack.at_us / width_us) as usize).min(slices - 1);
        buckets[b].0 += u64::from(ack.bets);
        buckets[b].1.push(ack.latency_us);
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(b, (bets, mut lat))| {
            lat.sort_unstable();
            let pick = |q: f64| {
                if lat.is_empty() {
                    0
                } else {
                    lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1]
                }
            };
            Interval {
                t_s: (b as u64 + 1) as f64 * width_us as f64 / 1e6,
                bets_per_s: bets as f64 / (width_us as f64 / 1e6),
                ack_p50_us: pick(0.5),
                ack_p99_us: pick(0.99),
                ack_p999_us: pick(0.999),
            }
        })
        .collect()
}

/// Writes `value` as pretty JSON to `path`, making its directory.
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, serde_json::to_string_pretty(value)? + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(acks: Vec<AckSample>) -> Outcome {
        let t0 = Instant::now();
        Outcome {
            connect: Duration::from_millis(3),
            handshakes: vec![Duration::from_millis(1), Duration::from_millis(3)],
            ingest_start: t0,
            ingest_end: t0 + Duration::from_secs(2),
            acks,
            bytes_sent: 8_000_000,
            last_done_sent: t0 + Duration::from_millis(2_100),
            last_done_acked: t0 + Duration::from_millis(2_105),
            winners_at: vec![
                t0 + Duration::from_millis(2_106),
                t0 + Duration::from_millis(2_108),
            ],
            reasks: 0,
            winners: 3,
            draw_poll_wait: Duration::from_millis(4),
        }
    }

    #[test]
    fn the_steady_rate_leaves_out_a_slow_start_and_a_slow_end() {
        // 100 bets per ms in the middle; the first and last tenths ten
        // times slower.
        let mut acks = Vec::new();
        let mut t = 0;
        for i in 0..100u64 {
            t += if !(10..90).contains(&i) {
                10_000
            } else {
                1_000
            };
            acks.push(AckSample {
                at_us: t,
                latency_us: 1,
                bets: 100,
            });
        }
        let steady = steady_rate(&acks);
        // From the 10th ACK (1,000 bets) to the 90th (9,000): 80 ms.
        assert!((steady - 100_000.0).abs() < 1.0, "{steady}");
        assert_eq!(steady_rate(&[]), 0.0);
    }

    #[test]
    fn throughput_and_latency_come_from_the_acks() {
        let acks: Vec<AckSample> = (0..1_000)
            .map(|i| AckSample {
                at_us: i * 2_000,
                latency_us: 100 + i,
                bets: 200,
            })
            .collect();
        let shape = RunShape {
            name: "t".into(),
            transport: "plain".into(),
            agencies: 2,
            batches: 1_000,
            window: 8,
            wall: Duration::from_secs(4),
        };
        let cost = RunCosts {
            peak_rss_kb: Some(10_000),
            parked_rss_kb: None,
            cpu_seconds: Some(1.0),
            bench_cpu_seconds: Some(2.0),
            ..RunCosts::default()
        };
        let r = Report::new(&shape, &outcome(acks), &cost, Some(200_000));
        assert_eq!(r.bets, 200_000);
        assert!((r.bets_per_s - 100_000.0).abs() < 1.0);
        assert!((r.mb_per_s - 4.0).abs() < 1e-9);
        assert!((599..=601).contains(&r.ack_p50_us), "{}", r.ack_p50_us);
        assert!((r.draw_to_last_winner_ms - 3.0).abs() < 1e-6);
        assert!((r.done_to_last_winner_ms - 8.0).abs() < 1e-6);
        assert!((r.wakeup_p50_ms - 1.0).abs() < 1e-6);
        assert!((r.handshake_p50_ms - 1.0).abs() < 1e-6);
        assert!((r.handshake_max_ms - 3.0).abs() < 1e-6);
        assert_eq!(r.server_cpu_percent, Some(25.0));
        assert_eq!(r.bench_cpu_percent, Some(50.0));
        assert!((r.server_peak_rss_mb.unwrap() - 10.24).abs() < 1e-9);
        assert!(
            r.summary()
                .starts_with("bench t: 200000 bets, 100000 bets/s, ack p99 ")
        );
        assert!(
            r.summary()
                .ends_with("draw->last winner 3.0 ms, rss 10.2 MB")
        );
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "agencies",
            "bets",
            "seconds",
            "bets_per_s",
            "ack_p50_us",
            "ack_p99_us",
            "draw_to_last_winner_ms",
            "server_peak_rss_mb",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from the JSON");
        }
    }

    #[test]
    fn the_comparison_is_tls_over_plain_with_the_tls_handshakes() {
        let acks = |bets| {
            vec![AckSample {
                at_us: 1_000,
                latency_us: 10,
                bets,
            }]
        };
        let shape = |transport: &str| RunShape {
            name: format!("c-{transport}"),
            transport: transport.into(),
            agencies: 2,
            batches: 1,
            window: 8,
            wall: Duration::from_secs(2),
        };
        let cost = RunCosts::default();
        // Over 2 s of ingest: 200,000 and 170,000 bets.
        let plain = Report::new(&shape("plain"), &outcome(acks(200_000)), &cost, None);
        let mut tls_outcome = outcome(acks(170_000));
        tls_outcome.connect = Duration::from_millis(40);
        tls_outcome.handshakes = vec![Duration::from_millis(10), Duration::from_millis(40)];
        let tls = Report::new(&shape("tls"), &tls_outcome, &cost, None);
        let c = TransportComparison::new("c", plain, tls);
        assert!((c.ratio - 0.85).abs() < 1e-9, "{}", c.ratio);
        assert!((c.tls_handshakes_ms - 40.0).abs() < 1e-9);
        assert!((c.tls_handshake_p50_ms - 10.0).abs() < 1e-9);
        assert!((c.plain_connect_ms - 3.0).abs() < 1e-9);
        assert_eq!(
            c.summary(),
            "bench c: 170000 bets each, plain 100000 bets/s, tls 85000 bets/s, tls/plain 85.0% (target 80%), 2 handshakes 40.0 ms (p50 10.00 ms, p99 40.00 ms)"
        );
        assert!(
            c.table()
                .contains("tls / plain: 85.0% (target: at least 80%)")
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["tls"]["transport"], "tls");
        assert_eq!(json["plain"]["name"], "c-plain");
    }

    #[test]
    fn the_timeline_splits_the_ingest_into_slices() {
        let acks = vec![
            AckSample {
                at_us: 5_000,
                latency_us: 10,
                bets: 100,
            },
            AckSample {
                at_us: 15_000,
                latency_us: 30,
                bets: 100,
            },
            AckSample {
                at_us: 16_000,
                latency_us: 20,
                bets: 100,
            },
        ];
        let t = timeline(&acks, 0.02);
        assert_eq!(t.len(), 2);
        assert!((t[0].bets_per_s - 10_000.0).abs() < 1e-6);
        assert!((t[1].bets_per_s - 20_000.0).abs() < 1e-6);
        assert_eq!((t[1].ack_p50_us, t[1].ack_p99_us), (20, 30));
    }
}
