//! The lottery: a central that collects agencies' bets durably and runs the draw.
//!
//! # Layout
//!
//! - [`wire`]: the frames of `PROTOCOL.md`, bytes to frames and back (pure).
//! - [`bet`]: what a valid bet is, shared by the central and the agencies (pure).
//! - [`config`]: the central's settings from `config.ini` and the environment.
//! - [`lottery`]: stored counts, closed agencies, winners, the draw (pure state).
//! - [`storage`]: `bets.csv` and the DONE journal: group commit and recovery.
//! - [`agency_file`]: the agency file format (`nombre,apellido,...`), read and written.
//! - [`reply`]: the central's reply frames as owned values, for the agencies and the bench.
//! - [`settings`]: settings layered from a file and the environment, with their source.
//! - [`limits`]: the process's limit on open files.
//! - [`loopback`]: a free loopback port, for tests and the bench.
//! - [`connection`]: one agency's socket, its read and write buffers, its stage.
//! - [`server`]: the single-threaded mio loop: accept, dispatch, park, wake, close.
//!
//! `lottery-server` (`src/main.rs`) only reads the config, starts logging and
//! calls [`server::Server::run`], so tests can run a central in-process.

pub mod agency_file;
pub mod bet;
pub mod config;
pub mod connection;
pub mod limits;
pub mod loopback;
pub mod lottery;
pub mod reply;
pub mod server;
pub mod settings;
pub mod storage;
pub mod wire;
