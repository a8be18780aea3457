//! The lottery: a central that collects agencies' bets durably and runs the draw.
//!
//! # Layout
//!
//! - [`wire`]: the frames of `PROTOCOL.md`, bytes to frames and back (pure).
//! - [`bet`]: what a valid bet is, shared by the central and the agencies (pure).
//! - [`config`]: the central's settings from `config.ini` and the environment.
//! - [`lottery`]: stored counts, closed agencies, winners, the draw (pure state).
//! - [`storage`]: `bets.csv` and the DONE journal: group commit and recovery.
//! - [`central`]: the lottery, the storage, today's date and the commit group: the central's state apart from its sockets.
//! - [`requests`]: what the central answers to BATCH, DONE and GET_WINNERS (the connection's agency binding first), as functions without sockets.
//! - [`replies`]: a connection's replies held until the group commit, turned into `ERROR STORAGE` if it fails (pure).
//! - [`parking`]: the parked GET_WINNERS requests, at most a few per agency, one park and one unpark for every way out.
//! - [`deadlines`]: park and idle deadlines ordered by time, with lazy deletion (pure).
//! - [`log_budget`]: a budget of log lines a second for lines one per connection (pure).
//! - [`schedule`]: which connections the loop drives next, which it writes this iteration, and their deadlines.
//! - [`connection`]: one agency's connection: its transport, its bounded read and write buffers, its stage, the agency it is bound to.
//! - [`transport`]: plain TCP or mutual TLS (rustls) under a connection, with the same read/write/flush semantics.
//! - [`accept`]: the listening socket: bind, accept up to the cap, refuse when descriptors run out.
//! - [`shutdown`]: SIGTERM/SIGINT: answer parked requests, send what is owed, close everything.
//! - [`server`]: the single-threaded mio loop alone: poll, accept, dispatch, commit, write, close.
//! - [`tls`]: mutual TLS: the central's and an agency's rustls configurations,
//!   and which agency a verified certificate names (no sockets).
//! - [`certs`]: making the CA, the central's and the agencies' certificates
//!   (`lottery-certs`, and the odd ones tests need).
//! - [`agency_file`]: the agency file format (`nombre,apellido,...`), read and written.
//! - [`reply`]: the central's reply frames as owned values, for the agencies and the bench.
//! - [`settings`]: settings layered from a file and the environment, with their source.
//! - [`limits`]: the process's limit on open files.
//! - [`loopback`]: a free loopback port, for tests and the bench.
//!
//! `lottery-server` (`src/main.rs`) only reads the config, starts logging and
//! calls [`server::Server::run`], so tests can run a central in-process.

pub mod accept;
pub mod agency_file;
pub mod bet;
pub mod central;
pub mod certs;
pub mod config;
pub mod connection;
pub mod deadlines;
pub mod limits;
pub mod log_budget;
pub mod loopback;
pub mod lottery;
pub mod parking;
pub mod replies;
pub mod reply;
pub mod requests;
pub mod schedule;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod storage;
pub mod tls;
pub mod transport;
pub mod wire;
