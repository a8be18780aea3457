//! The kernel's floor for waking parked agencies: a bare loop that writes
//! one WINNERS frame to each of N connected loopback sockets, while another
//! thread, like the bench's agencies, waits in one mio `poll` on their peers
//! and reads. No protocol, no central: what answering N parked sockets costs
//! at the least on this kernel, to compare the central's wake-up with.
//!
//! The sockets are set up like the central's (nodelay) and read like the
//! bench's (non-blocking, one `poll` for all). The floor runs from the
//! first write to the moment every reader has its whole frame.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lottery_proto::wire;
use mio::{Events, Interest, Poll, Token};

use crate::cpus;
use crate::procfs::{self, Sched};

/// What the floor measured.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    pub sockets: usize,
    /// From the first write to the last write returning.
    pub written: Duration,
    /// From the first write to the last frame read whole.
    pub all_read: Duration,
    /// The scheduler's counters of the writing and the reading thread,
    /// from the first write to their last.
    pub writer: Option<Sched>,
    pub reader: Option<Sched>,
    /// The host's steal from the first write to the last frame read, in ms.
    pub steal_ms: Option<f64>,
}

impl Floor {
    /// The floor: until every frame is written and read (a loopback write
    /// may return after its reader woke, so the later of the two).
    pub fn total(&self) -> Duration {
        self.written.max(self.all_read)
    }

    /// The floor per socket answered, in µs.
    pub fn per_socket_us(&self) -> f64 {
        self.total().as_secs_f64() * 1e6 / self.sockets as f64
    }

    /// The floor for `sockets` sockets, in ms (scaled when fewer were measured).
    pub fn ms_for(&self, sockets: usize) -> f64 {
        self.per_socket_us() * sockets as f64 / 1000.0
    }
}

/// A WINNERS frame like those of the `conn` preset: one document.
fn frame() -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_winners(&mut out, 1, 1, true, &["30111222"]);
    out
}

/// Measures the floor on `sockets` socket pairs (each pair is two descriptors:
/// the caller makes sure the open-files limit allows them). With `pin`, the
/// writer and the reader each get a CPU of their own, as
/// [`crate::cpus`] gives the central and the agencies during the wake-up.
pub fn measure(sockets: usize, pin: bool) -> Result<Floor> {
    ensure!(sockets > 0, "the floor needs at least one socket");
    let listener = TcpListener::bind("127.0.0.1:0").context("floor: binding")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(sockets);
    let mut writers = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let reader = TcpStream::connect(addr).context("floor: connecting")?;
        let (writer, _) = listener.accept().context("floor: accepting")?;
        writer.set_nodelay(true)?;
        reader.set_nonblocking(true)?;
        // As the bench's agencies once they ask (see `driver`): ACKs at
        // once, none left to a delayed-ACK timer.
        rustix::net::sockopt::set_tcp_quickack(&reader, true)?;
        readers.push(mio::net::TcpStream::from_std(reader));
        writers.push(writer);
    }
    let frame = frame();
    let frame_len = frame.len();
    let start = Arc::new(Barrier::new(2));
    let reader_start = Arc::clone(&start);
    let pinned = if pin {
        cpus::pin_apart(None).context("floor: pinning the writer")?
    } else {
        None
    };
    let reader_cpu = pinned.as_ref().map(|p| p.spare);
    let reading = std::thread::spawn(move || {
        if let Some(cpu) = reader_cpu {
            cpus::pin_this_thread(cpu)?;
        }
        read_all(readers, frame_len, &reader_start)
    });
    start.wait();
    let before = procfs::sched_of_this_thread();
    let steal_before = procfs::steal_ms();
    let t0 = Instant::now();
    for w in &mut writers {
        w.write_all(&frame).context("floor: writing")?;
    }
    let written = t0.elapsed();
    let writer = before
        .zip(procfs::sched_of_this_thread())
        .map(|(a, b)| a.until(&b));
    let read = reading.join();
    let steal_ms = steal_before.zip(procfs::steal_ms()).map(|(a, b)| b - a);
    // Unpinned whatever the reader did: the bench goes on after the floor.
    if let Some(pinned) = pinned {
        pinned.restore().context("floor: unpinning the writer")?;
    }
    let (done, reader) = read.map_err(|_| anyhow::anyhow!("floor: the reader panicked"))??;
    Ok(Floor {
        sockets,
        written,
        all_read: done.saturating_duration_since(t0),
        writer,
        reader,
        steal_ms,
    })
}

/// Waits in one poll on every reader until each holds a whole frame; when.
fn read_all(
    mut readers: Vec<mio::net::TcpStream>,
    frame_len: usize,
    start: &Barrier,
) -> io::Result<(Instant, Option<Sched>)> {
    let mut poll = Poll::new()?;
    for (i, r) in readers.iter_mut().enumerate() {
        poll.registry().register(r, Token(i), Interest::READABLE)?;
    }
    let mut got = vec![0usize; readers.len()];
    let mut left = readers.len();
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    start.wait();
    let before = procfs::sched_of_this_thread();
    while left > 0 {
        poll.poll(&mut events, Some(Duration::from_secs(10)))?;
        if events.is_empty() {
            return Err(io::Error::new(ErrorKind::TimedOut, "floor: frames missing"));
        }
        for event in events.iter() {
            let i = event.token().0;
            loop {
                match readers[i].read(&mut buf) {
                    Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                    Ok(n) => {
                        let before = got[i];
                        got[i] += n;
                        if before < frame_len && got[i] >= frame_len {
                            left -= 1;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let done = Instant::now();
    let sched = before
        .zip(procfs::sched_of_this_thread())
        .map(|(a, b)| a.until(&b));
    Ok((done, sched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_reads_one_whole_frame_on_every_socket() {
        let floor = measure(8, true).unwrap();
        assert_eq!(floor.sockets, 8);
        assert!(floor.total() >= floor.written && floor.total() >= floor.all_read);
        assert!(floor.per_socket_us() > 0.0);
    }
}
