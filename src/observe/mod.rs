//! What the central shows of itself (`METRICS_PORT`): its counters, a
//! snapshot of its state and their encodings, and the HTTP port that
//! serves them from the central's own loop.
//!
//! - `figures`: the counters the central bumps as it works (pure);
//! - `snapshot`: one look at the central, encoded for Prometheus
//!   (`/metrics`) and as JSON (`/status`) (pure);
//! - `http`: the request heads read and the responses written (pure);
//! - `endpoint`: the listener and its bounded HTTP connections (sockets);
//! - `page.html`: the page served at `/`, which draws `/status`.

pub mod endpoint;
pub mod figures;
pub mod http;
pub mod snapshot;

/// The page served at `/`: self-contained, it polls `/status` each second.
pub const PAGE: &str = include_str!("page.html");
