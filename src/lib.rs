//! The lottery: a central that collects agencies' bets durably and runs the draw.
//!
//! # Layout
//!
//! - [`wire`]: the frames of `PROTOCOL.md`, bytes to frames and back (pure).
//! - [`bet`]: what a valid bet is, shared by the central and the agencies (pure).
//! - [`config`]: the central's settings from `config.ini` and the environment.
//! - [`lottery`]: stored counts, closed agencies, winners, the draw (pure state).
//! - [`storage`]: `bets.csv` and the DONE journal: group commit and recovery.
//! - [`connection`]: one agency's socket, its read and write buffers, its stage.
//! - [`server`]: the single-threaded mio loop: accept, dispatch, park, wake, close.
//! - [`tls`]: mutual TLS: the central's and an agency's rustls configurations,
//!   and which agency a verified certificate names.
//! - [`certs`]: making the CA, the central's and the agencies' certificates
//!   (`lottery-certs`, and the odd ones tests need).
//!
//! `lottery-server` (`src/main.rs`) only reads the config, starts logging and
//! calls [`server::Server::run`], so tests can run a central in-process.

pub mod bet;
pub mod certs;
pub mod config;
pub mod connection;
pub mod lottery;
pub mod server;
pub mod storage;
pub mod tls;
pub mod wire;
