//! A Prometheus stand-in for a run: `GET /metrics` on the central's
//! observation port every N ms from a thread of its own, from before the
//! central is up until the run ends, and what the scrapes took.
//!
//! It measures what scraping costs the central's throughput (the run's
//! bets/s beside one without it) and how long a scrape waits behind the
//! loop's work; a scrape refused because the central is not up yet is not
//! counted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the scrapes of a run saw.
#[derive(Clone, Debug, Default)]
pub struct Scrapes {
    pub answered: u64,
    /// Scrapes that got no whole 200 (the central was up).
    pub failed: u64,
    pub total: Duration,
    pub max: Duration,
    /// Bytes of the last answer.
    pub last_bytes: usize,
}

impl Scrapes {
    /// `scrapes: N every P ms, mean X ms, max Y ms, F failed, last Z kB`.
    pub fn line(&self, period: Duration) -> String {
        let mean = if self.answered > 0 {
            self.total.as_secs_f64() * 1e3 / self.answered as f64
        } else {
            0.0
        };
        format!(
            "scrapes: {} every {} ms, mean {mean:.2} ms, max {:.2} ms, {} failed, last {:.1} kB",
            self.answered,
            period.as_millis(),
            self.max.as_secs_f64() * 1e3,
            self.failed,
            self.last_bytes as f64 / 1e3
        )
    }
}

/// A scraping thread; [`Scraper::stop`] ends it and returns its figures.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Scrapes>,
    period: Duration,
}

impl Scraper {
    pub fn start(addr: SocketAddr, period: Duration) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = Scrapes::default();
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                match scrape(addr) {
                    Some(Ok(bytes)) => {
                        let took = started.elapsed();
                        seen.answered += 1;
                        seen.total += took;
                        seen.max = seen.max.max(took);
                        seen.last_bytes = bytes;
                    }
                    Some(Err(())) => seen.failed += 1,
                    None => {}
                }
                std::thread::sleep(period.saturating_sub(started.elapsed()));
            }
            seen
        });
        Scraper {
            stop,
            thread,
            period,
        }
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn stop(self) -> Scrapes {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// One `GET /metrics`: `None` if nothing listens yet, `Some(Ok(bytes))`
/// for a whole 200.
fn scrape(addr: SocketAddr) -> Option<Result<usize, ()>> {
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
    let request = b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if socket.write_all(request).is_err() {
        return Some(Err(()));
    }
    let mut answer = Vec::with_capacity(64 * 1024);
    if socket.read_to_end(&mut answer).is_err() || !answer.starts_with(b"HTTP/1.1 200") {
        return Some(Err(()));
    }
    Some(Ok(answer.len()))
}
