//! `lottery-gen`: writes synthetic agency files and the winners they hold.
//!
//! `DIR/agency-{i}.csv` for i in 1..=K, in the course's format, and
//! `DIR/expected-winners.txt` with one `agency winners` line per agency, so a
//! demo or a test can check what the agencies report.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use lottery_bench::agency_file::{EXPECTED_WINNERS, write_agency_file, write_expected_winners};
use lottery_bench::synth::{DEFAULT_WINNING_NUMBER, Synth, WinnerPlan};

/// Writes K synthetic agency files with a known number of winners each.
#[derive(Parser, Debug)]
#[command(name = "lottery-gen", version)]
struct Args {
    /// How many agencies (files agency-1.csv ..= agency-K.csv).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    agencies: u32,
    /// Bets per agency.
    #[arg(long, default_value_t = 10_000)]
    bets: u32,
    /// The same seed always writes the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Winners per agency; without it each agency gets 0 to 3, chosen by the seed.
    #[arg(long)]
    winners_per_agency: Option<u32>,
    /// The number that wins (the central's WINNING_NUMBER).
    #[arg(long, default_value_t = DEFAULT_WINNING_NUMBER, value_parser = clap::value_parser!(u16).range(0..=9999))]
    winning_number: u16,
    /// Where to write the files (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lottery-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let plan = args
        .winners_per_agency
        .map_or(WinnerPlan::Varied, WinnerPlan::Fixed);
    let synth = Synth::new(args.seed, args.bets, plan).with_winning_number(args.winning_number);
    fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut expected = Vec::with_capacity(args.agencies as usize);
    for agency in 1..=args.agencies {
        write_agency_file(&synth, agency, &args.out)?;
        expected.push((agency, synth.winners_of(agency)));
    }
    write_expected_winners(&args.out.join(EXPECTED_WINNERS), &expected)?;
    let winners: u64 = expected.iter().map(|&(_, w)| u64::from(w)).sum();
    let total = u64::from(args.agencies) * u64::from(args.bets);
    println!(
        "lottery-gen: {} agencies x {} bets = {total} bets, {winners} winners of {}, seed {}, in {} ({:.2} s)",
        args.agencies,
        args.bets,
        args.winning_number,
        args.seed,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
