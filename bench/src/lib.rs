//! Synthetic agencies for the lottery, and the bench that plays them.
//!
//! # Layout
//!
//! - [`synth`]: seeded synthetic bets with a known number of winners per agency (pure).
//! - [`agency_file`]: agency CSV files in the course's format, written and read.
//! - [`workload`]: every agency's BATCH frames, encoded before the clock starts.
//! - [`central`]: a `lottery-server` process started, watched and stopped for a run.
//! - [`procfs`]: a process's memory and CPU time from `/proc`; the open-files limit.
//! - [`mtls`]: the CA, the central's and every agency's certificate for a run over mutual TLS.
//! - [`transport`]: an agency's stream, plain TCP or rustls over it, non-blocking.
//! - [`driver`]: the agencies on the wire, one mio loop, and what it observed.
//! - [`redis`]: Redis with appendfsync always on the same bets, beside the central.
//! - [`floor`]: the kernel's floor for answering N parked sockets, to compare the central's wake-up with.
//! - [`scrape`]: `GET /metrics` every N ms during a run, and what the scrapes took.
//! - [`report`]: the figures of a run: table, JSON, summary line.
//! - [`chart`]: throughput and latency over time, as SVG and PNG.
//!
//! `lottery-gen` writes agency files; `lottery-bench` runs the whole bench.

pub mod agency_file;
pub mod central;
pub mod chart;
pub mod cpus;
pub mod driver;
pub mod floor;
pub mod mtls;
pub mod procfs;
pub mod redis;
pub mod report;
pub mod scrape;
pub mod synth;
pub mod transport;
pub mod workload;
