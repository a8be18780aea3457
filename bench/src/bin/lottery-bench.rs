//! `lottery-bench`: plays K agencies against a central and measures it.
//!
//! Builds the traffic (synthetic, or the agency files of `--data`), starts a
//! `lottery-server` of its own unless `--addr` names one, plays the agencies,
//! checks every winners list and the bets file, then prints a table, writes
//! `OUT/NAME.json` and draws `OUT/NAME.svg` and `OUT/NAME.png`. The last line
//! printed sums the run up. Any wrong answer exits non-zero.
//!
//! `--transport tls` plays the agencies over mutual TLS, each with its own
//! certificate (made for the run, with a CA of its own, given to the central
//! it starts). `--transport both` plays the same traffic over plain TCP and
//! then over TLS, a fresh central each, writes `NAME-plain.*` and
//! `NAME-tls.*` as two runs would and `NAME.json` with the two side by side
//! and their ratio.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lottery_bench::agency_file::{EXPECTED_WINNERS, read_expected_winners};
use lottery_bench::central::{Central, CentralOptions, CentralTls, count_rows};
use lottery_bench::driver::{self, DriverOptions, Milestone};
use lottery_bench::mtls::{TlsAgencies, TlsSetup};
use lottery_bench::report::{Report, RunCosts, RunShape, TransportComparison};
use lottery_bench::scrape::Scraper;
use lottery_bench::synth::{DEFAULT_WINNING_NUMBER, Synth, WinnerPlan};
use lottery_bench::workload::{Workload, count_agency_files};
use lottery_bench::{chart, procfs};
use lottery_bench::{cpus, floor};

/// Plays K agencies x B bets against a lottery central and measures it.
#[derive(Parser, Debug)]
#[command(name = "lottery-bench", version)]
struct Args {
    /// Agencies (default 1,000; with --data, as many files as the directory holds).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    agencies: Option<u32>,
    /// Bets per agency, for synthetic agencies.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    bets: u32,
    /// Seed of the synthetic bets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Winners per synthetic agency; without it each gets 0 to 3.
    #[arg(long)]
    winners_per_agency: Option<u32>,
    /// Play the agency files DIR/agency-{i}.csv instead of synthetic ones;
    /// DIR/expected-winners.txt, if there, is checked against them.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The number that wins (given to the central it starts).
    #[arg(long, default_value_t = DEFAULT_WINNING_NUMBER, value_parser = clap::value_parser!(u16).range(0..=9999))]
    winning_number: u16,
    /// Batches each agency keeps in flight.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    window: u32,
    /// Bets per batch at most (default: as many as fit in an 8 kB frame).
    #[arg(long)]
    batch_bets: Option<u16>,
    /// Use the central at this address instead of starting one; it must
    /// expect exactly these agencies and hold no bets yet.
    #[arg(long)]
    addr: Option<String>,
    /// With --addr: the central's process id, to read its RSS and CPU time.
    #[arg(long, requires = "addr")]
    server_pid: Option<u32>,
    /// With --addr: the central's bets file, to count its rows afterwards
    /// (read after the run; the central should have flushed it by then).
    #[arg(long, requires = "addr")]
    bets_file: Option<PathBuf>,
    /// The central's binary (default: lottery-server beside this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The central's LOGGING_LEVEL.
    #[arg(long, default_value = "WARN")]
    server_log_level: String,
    /// More settings for the central it starts, as KEY=VALUE (repeatable).
    #[arg(long = "server-env", value_parser = key_value)]
    server_env: Vec<(String, String)>,
    /// Keep the central's directory (bets file, journal, log) and print where.
    #[arg(long)]
    keep: bool,
    /// How long the last agency waits, with everyone else's GET_WINNERS
    /// written, before its DONE (so the central has parked them).
    #[arg(long, default_value_t = 200)]
    settle_ms: u64,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    max_connecting: usize,
    /// The run fails if it takes longer.
    #[arg(long, default_value_t = 1_800)]
    timeout_s: u64,
    /// The run fails if the agencies are not all connected (and over TLS
    /// done with their handshakes) within this.
    #[arg(long, default_value_t = 60)]
    connect_timeout_s: u64,
    /// The run's name: OUT/NAME.json, .svg and .png.
    #[arg(long, default_value = "run")]
    name: String,
    /// Where the JSON and the chart go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/out"))]
    out: PathBuf,
    /// Skip the chart.
    #[arg(long)]
    no_chart: bool,
    /// How the agencies reach the central: plain TCP, mutual TLS, or both
    /// one after the other (same traffic, a fresh central each).
    #[arg(long, value_enum, default_value_t = TransportChoice::Plain)]
    transport: TransportChoice,
    /// After the run, time the kernel's floor for waking the parked agencies
    /// (`lottery_bench::floor`) and print the central's wake-up against it.
    #[arg(long)]
    floor: bool,
    /// Leave the scheduler to place the central and the agencies during the
    /// draw and the floor. By default, from the moment every agency but the
    /// last is parked until all are answered, the central gets one CPU and
    /// the agencies another, and the floor's writer and reader likewise
    /// (`lottery_bench::cpus` says why).
    #[arg(long)]
    no_pin: bool,
    /// Turn the central's observation port on (`METRICS_PORT`) and scrape
    /// `GET /metrics` every this many ms during the run (a central the
    /// bench starts only); the scrapes' figures are printed after the run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "addr")]
    scrape_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TransportChoice {
    Plain,
    Tls,
    Both,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    let (k, v) = text.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((k.to_string(), v.to_string()))
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    let scraper = match args.scrape_ms {
        Some(ms) => match lottery_proto::support::loopback::free_port() {
            Ok(port) => {
                args.server_env
                    .push(("METRICS_PORT".into(), port.to_string()));
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                Some(Scraper::start(addr, Duration::from_millis(ms)))
            }
            Err(e) => {
                eprintln!(
                    "lottery-bench {}: FAILED: no free port to scrape: {e}",
                    args.name
                );
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let result = run(&args);
    if let Some(scraper) = scraper {
        let period = scraper.period();
        eprintln!(
            "lottery-bench {}: {}",
            args.name,
            scraper.stop().line(period)
        );
    }
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lottery-bench {}: FAILED: {e:#}", args.name);
            ExitCode::FAILURE
        }
    }
}

/// Builds the traffic once, plays it over the transports asked for, and
/// returns the summary line.
fn run(args: &Args) -> Result<String> {
    let agencies = match (&args.data, args.agencies) {
        (_, Some(k)) => k,
        (Some(dir), None) => count_agency_files(dir)?,
        (None, None) => 1_000,
    };
    // A central started by the bench inherits the raised limit.
    let fds = lottery_proto::support::limits::raise_open_files(u64::from(agencies) + 256)?;
    ensure!(
        fds >= u64::from(agencies) + 32,
        "{agencies} agencies need more open files than the limit of {fds} (raise `ulimit -Hn`)"
    );

    let prepared = Instant::now();
    let workload = build_workload(args, agencies)?;
    eprintln!(
        "lottery-bench {}: {agencies} agencies, {} bets, {} batches, {:.1} MB of frames, {} winners (encoded in {:.2} s)",
        args.name,
        workload.total_bets(),
        workload.total_batches(),
        workload.total_bytes() as f64 / 1e6,
        workload.total_winners(),
        prepared.elapsed().as_secs_f64()
    );

    if args.transport != TransportChoice::Plain {
        ensure!(
            args.addr.is_none(),
            "--transport {:?} starts its own central: its certificates are made for the run",
            args.transport
        );
    }
    let tls = match args.transport {
        TransportChoice::Plain => None,
        TransportChoice::Tls | TransportChoice::Both => {
            let made = Instant::now();
            let setup = TlsSetup::new(agencies)?;
            eprintln!(
                "lottery-bench {}: a CA and {agencies} agency certificates made in {:.2} s",
                args.name,
                made.elapsed().as_secs_f64()
            );
            Some(setup)
        }
    };
    match (args.transport, &tls) {
        (TransportChoice::Plain, _) => Ok(play_one(args, &workload, &args.name, None)?.summary()),
        (TransportChoice::Tls, Some(tls)) => {
            Ok(play_one(args, &workload, &args.name, Some(tls))?.summary())
        }
        (TransportChoice::Both, Some(tls)) => {
            let plain = play_one(args, &workload, &format!("{}-plain", args.name), None)?;
            let over_tls = play_one(args, &workload, &format!("{}-tls", args.name), Some(tls))?;
            let comparison = TransportComparison::new(&args.name, plain, over_tls);
            println!("{}: plain TCP and mutual TLS", args.name);
            print!("{}", comparison.table());
            let path = args.out.join(&args.name).with_extension("json");
            comparison.write_json(&path)?;
            eprintln!("wrote {}", path.display());
            Ok(comparison.summary())
        }
        (_, None) => unreachable!("certificates are made for every TLS run"),
    }
}

/// One run: a central (unless `--addr`), the agencies over one transport,
/// the checks, the report written as `OUT/NAME.json` (and the chart).
fn play_one(
    args: &Args,
    workload: &Workload,
    name: &str,
    tls: Option<&TlsSetup>,
) -> Result<Report> {
    let agencies = workload.agencies.len() as u32;
    let mut central = match &args.addr {
        Some(_) => None,
        None => Some(start_central(
            args,
            agencies,
            tls.map(|t| t.central.clone()),
        )?),
    };
    let addr = match (&args.addr, &central) {
        (Some(a), _) => resolve(a)?,
        (None, Some(c)) => c.addr,
        (None, None) => unreachable!("a central is started when no address is given"),
    };
    let pid = central.as_ref().map(Central::pid).or(args.server_pid);

    let result = play(args, workload, addr, pid, tls.map(|t| t.agencies.clone()));
    let (outcome, mut cost, wall) = match result {
        Ok(played) => played,
        Err(e) => {
            if let Some(c) = &central {
                eprintln!("the central's log ends with:\n{}", c.log_tail(20));
            }
            return Err(e);
        }
    };
    cost.peak_rss_kb = pid.and_then(procfs::peak_rss_kb);

    let bets_file = match &mut central {
        Some(c) => {
            let status = c.stop(Duration::from_secs(60))?;
            ensure!(
                status.success(),
                "the central exited with {status} after SIGTERM:\n{}",
                c.log_tail(20)
            );
            if args.keep {
                eprintln!("the central's files are kept in {}", c.dir.display());
            }
            // With STORAGE=postgres the bets are in the database, not in
            // the file (bench/run.sh pg counts them there).
            let in_database = args
                .server_env
                .iter()
                .any(|(k, v)| k == "STORAGE" && v.starts_with("postgres"));
            (!in_database).then(|| c.bets_file.clone())
        }
        None => args.bets_file.clone(),
    };
    let rows = match bets_file {
        Some(path) => {
            let rows = count_rows(&path)
                .with_context(|| format!("counting the rows of {}", path.display()))?;
            ensure!(
                rows == workload.total_bets(),
                "{} holds {rows} rows, expected {}",
                path.display(),
                workload.total_bets()
            );
            Some(rows)
        }
        None => None,
    };

    let shape = RunShape {
        name: name.to_string(),
        transport: if tls.is_some() { "tls" } else { "plain" }.to_string(),
        agencies,
        batches: workload.total_batches(),
        window: args.window as usize,
        wall,
    };
    let report = Report::new(&shape, &outcome, &cost, rows);
    print!("{}", report.table());
    let stem = args.out.join(name);
    report.write_json(&stem.with_extension("json"))?;
    if !args.no_chart {
        chart::draw(&report, &stem)?;
    }
    eprintln!(
        "wrote {}.json{}",
        stem.display(),
        if args.no_chart { "" } else { ", .svg and .png" }
    );
    if args.floor {
        print_floor(
            agencies as usize - 1,
            report.draw_to_last_winner_ms,
            &cost,
            !args.no_pin,
        )?;
    }
    Ok(report)
}

/// Times the floor on as many socket pairs as the open-files limit allows
/// (up to `parked`), and prints the central's wake-up as a ratio to it.
fn print_floor(parked: usize, central_ms: f64, cost: &RunCosts, pin: bool) -> Result<()> {
    let limit = lottery_proto::support::limits::raise_open_files(2 * parked as u64 + 64)?;
    let sockets = parked.min((limit.saturating_sub(64) / 2) as usize).max(1);
    let floor = floor::measure(sockets, pin)?;
    let floor_ms = floor.ms_for(parked);
    println!(
        "floor: {sockets} sockets, one WINNERS frame each: written in {:.1} ms, all read in {:.1} ms ({:.1} us a socket); for {parked} parked {floor_ms:.1} ms; the central's draw->last winner {central_ms:.1} ms = {:.2}x the floor",
        floor.written.as_secs_f64() * 1000.0,
        floor.all_read.as_secs_f64() * 1000.0,
        floor.per_socket_us(),
        central_ms / floor_ms
    );
    let show = |s: Option<procfs::Sched>| {
        s.map_or("unknown".to_string(), |s| {
            format!(
                "ran {:.1} ms, runnable and waiting {:.1} ms, {} voluntary and {} involuntary switches",
                s.ran_ns as f64 / 1e6,
                s.waited_ns as f64 / 1e6,
                s.voluntary,
                s.involuntary
            )
        })
    };
    println!(
        "last DONE sched: the central {}; the bench {}",
        show(cost.draw_central),
        show(cost.draw_bench)
    );
    println!(
        "wake-up sched: the central {}; the bench {}",
        show(cost.wakeup_central),
        show(cost.wakeup_bench)
    );
    println!(
        "floor sched: the writer {}; the reader {}",
        show(floor.writer),
        show(floor.reader)
    );
    let steal = |ms: Option<f64>| ms.map_or("unknown".to_string(), |ms| format!("{ms:.0} ms"));
    println!(
        "host steal (all CPUs, to the tick): during the wake-up {}, during the floor {}",
        steal(cost.wakeup_steal_ms),
        steal(floor.steal_ms)
    );
    Ok(())
}

fn build_workload(args: &Args, agencies: u32) -> Result<Workload> {
    let max_batch = args.batch_bets.map_or(usize::MAX, usize::from);
    let Some(dir) = &args.data else {
        let plan = args
            .winners_per_agency
            .map_or(WinnerPlan::Varied, WinnerPlan::Fixed);
        let synth = Synth::new(args.seed, args.bets, plan).with_winning_number(args.winning_number);
        return Ok(Workload::synthetic(&synth, agencies, max_batch));
    };
    let workload = Workload::from_dir(dir, agencies, max_batch, args.winning_number)?;
    let expected_path = dir.join(EXPECTED_WINNERS);
    if expected_path.exists() {
        for (agency, count) in read_expected_winners(&expected_path)? {
            let Some(load) = workload.agencies.get(agency as usize - 1) else {
                continue;
            };
            if load.winners.len() != count as usize {
                bail!(
                    "agency {agency}'s file holds {} winners of {}, but {} says {count}",
                    load.winners.len(),
                    args.winning_number,
                    expected_path.display()
                );
            }
        }
    }
    Ok(workload)
}

fn start_central(args: &Args, agencies: u32, tls: Option<CentralTls>) -> Result<Central> {
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("lottery-server"),
    };
    Central::start(&CentralOptions {
        bin,
        agencies,
        winning_number: args.winning_number,
        log_level: args.server_log_level.clone(),
        extra_env: args.server_env.clone(),
        keep_dir: args.keep,
        tls,
    })
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("--addr {addr}"))?
        .next()
        .with_context(|| format!("--addr {addr} names no address"))
}

/// Plays the agencies, reading the central's CPU time around it.
fn play(
    args: &Args,
    workload: &Workload,
    addr: SocketAddr,
    pid: Option<u32>,
    tls: Option<TlsAgencies>,
) -> Result<(driver::Outcome, RunCosts, Duration)> {
    let opts = DriverOptions {
        addr,
        window: args.window as usize,
        settle: Duration::from_millis(args.settle_ms),
        max_connecting: args.max_connecting,
        timeout: Duration::from_secs(args.timeout_s),
        connect_timeout: Duration::from_secs(args.connect_timeout_s),
        tls,
    };
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(workload.total_bets());
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} bets, {msg} (eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let me = std::process::id();
    let central_cpu = || pid.and_then(procfs::cpu_seconds);
    let (central_before, bench_before) = (central_cpu(), procfs::cpu_seconds(me));
    let mut at_ingest_end = (None, None);
    let mut parked_rss_kb = None;
    let mut parked_sched = (None, None);
    let mut acked_sched = (None, None);
    let mut answered_sched = (None, None);
    let mut pinned = None;
    let mut steal = (None, None);
    let started = Instant::now();
    let mut ingest_wall = Duration::ZERO;
    let outcome = driver::run(
        &opts,
        workload,
        progress.as_ref(),
        |milestone| match milestone {
            Milestone::IngestEnd => {
                at_ingest_end = (central_cpu(), procfs::cpu_seconds(me));
                ingest_wall = started.elapsed();
            }
            Milestone::AllParked => {
                parked_rss_kb = pid.and_then(procfs::rss_kb);
                if !args.no_pin && pid.is_some() {
                    pinned = Some(cpus::pin_apart(pid));
                }
                parked_sched = (pid.and_then(procfs::sched), procfs::sched_of_this_thread());
            }
            Milestone::LastDoneAcked => {
                acked_sched = (pid.and_then(procfs::sched), procfs::sched_of_this_thread());
                steal.0 = procfs::steal_ms();
            }
            Milestone::AllAnswered => {
                answered_sched = (pid.and_then(procfs::sched), procfs::sched_of_this_thread());
                steal.1 = procfs::steal_ms();
            }
        },
    );
    match pinned {
        Some(Ok(Some(pinned))) => pinned
            .restore()
            .context("unpinning the central and the agencies")?,
        // The draw ran unpinned; said, so its figure is read as such.
        Some(Err(e)) => {
            eprintln!("the central and the agencies were not pinned to CPUs of their own: {e}")
        }
        Some(Ok(None)) | None => {}
    }
    let outcome = outcome?;
    let since_parked = |before: Option<procfs::Sched>, after: Option<procfs::Sched>| {
        before.zip(after).map(|(a, b)| a.until(&b))
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let spent = |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(a, b)| b - a);
    let cost = RunCosts {
        peak_rss_kb: None,
        parked_rss_kb,
        cpu_seconds: spent(central_before, at_ingest_end.0),
        bench_cpu_seconds: spent(bench_before, at_ingest_end.1),
        draw_central: since_parked(parked_sched.0, acked_sched.0),
        draw_bench: since_parked(parked_sched.1, acked_sched.1),
        wakeup_central: since_parked(acked_sched.0, answered_sched.0),
        wakeup_bench: since_parked(acked_sched.1, answered_sched.1),
        wakeup_steal_ms: spent(steal.0, steal.1),
    };
    // CPU shares are of the connect and ingest phases, when both sides work
    // flat out; the settle time and the draw would only dilute them.
    let wall = ingest_wall;
    Ok((outcome, cost, wall))
}
