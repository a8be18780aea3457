//! Redis with `appendfsync always` under the central's standard load: the
//! same synthetic bets (`--agencies`, `--bets`, `--seed`), each the row the
//! central stores, RPUSHed pipelined; prints one line per run and the best.
//!
//! `bench/run.sh standard` runs it beside the central and prints the ratio.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Parser;
use lottery_bench::redis::{self, RedisServer};
use lottery_bench::synth::{Synth, WinnerPlan};

#[derive(Parser)]
#[command(about = "Redis (appendfsync always, RPUSH pipelined) on the bench's bets")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    agencies: u32,
    #[arg(long, default_value_t = 10_000)]
    bets: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Commands per pipeline.
    #[arg(long, default_value_t = 64)]
    pipeline: usize,
    /// Client connections, each with one pipeline in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Runs; the best is the figure.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The redis-server binary (default: the one on PATH).
    #[arg(long)]
    redis_server: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let Some(server) = args.redis_server.clone().or_else(redis::find_server) else {
        bail!("no redis-server on PATH (Debian: apt-get install redis-server)");
    };
    let synth = Synth::new(args.seed, args.bets, WinnerPlan::Varied);
    let load = redis::encode(&synth, args.agencies, args.pipeline);
    let mut best = 0f64;
    for run in 1..=args.runs {
        let dir = std::env::temp_dir().join(format!("lottery-redis-{}-{run}", std::process::id()));
        let redis_run = {
            let server = RedisServer::start(&server, &dir)?;
            redis::run(server.port, &load, args.connections)?
        };
        let _ = std::fs::remove_dir_all(&dir);
        let rate = redis_run.bets_per_second();
        best = best.max(rate);
        println!(
            "redis run {run}: {} bets in {:.2} s, {rate:.0} bets/s",
            redis_run.bets,
            redis_run.elapsed.as_secs_f64()
        );
    }
    println!(
        "bench redis: {} bets, best of {}: {best:.0} bets/s (appendfsync always, RPUSH pipelined {}, {} connections)",
        u64::from(args.agencies) * u64::from(args.bets),
        args.runs,
        args.pipeline,
        args.connections
    );
    Ok(())
}
