//! The lottery: a central that collects agencies' bets durably and runs the draw.
//!
//! # Layout
//!
//! The folders are floors: a module imports only from its own folder or a
//! lower floor, never from a higher one (`tests/architecture.rs` checks it).
//!
//! 0. [`support`]: settings, the open-files limit, a loopback port, log
//!    budgets, a deadline heap: nothing of the lottery in them.
//! 1. [`wire`] and 2. [`bets`]: the wire and the bet rules, from the
//!    `lottery-proto` crate (`proto/`), which the agency shares.
//! 3. [`store`]: where the bets are kept, behind one seam (`bets.csv` and
//!    its journal: group commit and recovery); [`net`]: plain TCP or mutual
//!    TLS, certificates, the listening socket.
//! 4. [`central`]: the lottery's state and the answers to requests, without
//!    sockets.
//! 5. [`connections`]: one connection's buffers and stage, the parked
//!    requests, which connections the loop drives next, the commit settled
//!    across them.
//! 6. the top: [`config`] (the central's settings), [`start`] (why it could
//!    not start), [`server`] (the single-threaded mio loop alone: poll,
//!    accept, dispatch, commit, write, close), [`shutdown`] (SIGTERM/SIGINT).
//!
//! `lottery-server` (`src/main.rs`) only reads the config, starts logging and
//! calls [`server::Server::run`], so tests can run a central in-process.

pub use lottery_proto::{bets, wire};

pub mod central;
pub mod config;
pub mod connections;
pub mod net;
pub mod observe;
pub mod probe;
pub mod server;
pub mod shutdown;
pub mod start;
pub mod store;
pub mod support;
pub mod watch;
