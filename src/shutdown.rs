//! SIGTERM or SIGINT: stop accepting, answer parked requests with
//! `SHUTTING_DOWN`, commit what is staged (a commit under way on the
//! store's thread is waited for at most [`SHUTDOWN_COMMIT_WAIT`], then
//! given up: its batches answered `ERROR STORAGE`, never acknowledged),
//! send what is owed (for at most [`SHUTDOWN_FLUSH`]), close every
//! connection, then sync and close the files, logging each resource as it
//! closes.

use std::io;
use std::time::{Duration, Instant};

use log::info;
use mio::{Events, Poll, Token};
use signal_hook::consts::SIGTERM;
use slab::Slab;

use crate::central::state::Central;
use crate::connections::commit::{self, commit_group};
use crate::connections::connection::Connection;
use crate::connections::parking::{Parking, Wake};
use crate::connections::schedule::Schedule;
use crate::net::accept::Acceptor;

/// How long shutdown keeps writing what is owed to slow readers.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(500);
/// How long shutdown waits for a commit under way on the store's thread.
/// With [`SHUTDOWN_FLUSH`], well within `docker stop`'s 10 s grace.
pub const SHUTDOWN_COMMIT_WAIT: Duration = Duration::from_secs(3);

/// What the loop hands over when a signal stops it.
pub struct Parts {
    pub poll: Poll,
    pub acceptor: Acceptor,
    pub connections: Slab<Connection>,
    pub central: Central,
    pub parking: Parking,
    pub schedule: Schedule,
    pub now: Instant,
}

pub fn run(mut server: Parts, signal: i32) -> io::Result<()> {
    let name = if signal == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    };
    info!("action: shutdown | result: in_progress | signal: {name}");
    server.acceptor.close(server.poll.registry());
    let now = server.now;
    server.parking.unpark_all(
        &mut server.connections,
        Wake::ShuttingDown,
        false,
        now,
        &mut server.schedule,
    );
    if server.central.commit_under_way() {
        let outcome = match server.central.wait_commit(SHUTDOWN_COMMIT_WAIT) {
            Some(outcome) => outcome,
            None => server.central.abandon_commit(),
        };
        server.schedule.touch_committing(&mut server.connections);
        commit::settle(
            outcome,
            &server.central,
            &mut server.connections,
            &mut server.parking,
            &mut server.schedule,
            now,
        );
        // Requests deferred behind it are not taken: their connections close.
    } else {
        commit_group(
            &mut server.central,
            &mut server.connections,
            &mut server.parking,
            &mut server.schedule,
            now,
        );
    }
    let keys: Vec<usize> = server.connections.iter().map(|(k, _)| k).collect();
    let deadline = Instant::now() + SHUTDOWN_FLUSH;
    let mut events = Events::with_capacity(1024);
    loop {
        let mut owed = false;
        for &key in &keys {
            if let Some(conn) = server.connections.get_mut(key) {
                match conn.write(Instant::now()) {
                    Ok(all) => owed |= !all,
                    Err(_) => {
                        server.connections.remove(key);
                    }
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !owed || left.is_zero() {
            break;
        }
        for (key, conn) in server.connections.iter_mut() {
            if conn.has_unsent() {
                let _ = conn.want_writable(server.poll.registry(), Token(key), true);
            }
        }
        let _ = server
            .poll
            .poll(&mut events, Some(left.min(Duration::from_millis(50))));
    }
    for (_, mut conn) in std::mem::take(&mut server.connections) {
        conn.close_notify();
        conn.deregister(server.poll.registry());
        info!(
            "action: cerrar_conexion | result: success | peer: {}",
            conn.peer()
        );
    }
    server.central.close()?;
    info!("action: shutdown | result: success | signal: {name}");
    Ok(())
}
