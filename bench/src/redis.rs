//! Redis beside the central: the same synthetic bets, each the row the
//! central writes to `bets.csv`, `RPUSH`ed into a `redis-server` started
//! with `appendonly yes` and `appendfsync always` (each write on disk
//! before its reply, as the central ACKs after its fdatasync).
//!
//! Redis is given its best case for durable writes: many connections, each
//! pipelining `pipeline` commands, so one fsync of its event loop covers as
//! many writes as are in flight (its own group commit). The commands are
//! encoded before the clock starts, as the central's batches are.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lottery_proto::bets::bet;
use lottery_proto::bets::row::push_row;
use lottery_proto::wire::BetFields;

use crate::synth::Synth;

/// What one Redis run did.
#[derive(Clone, Copy, Debug)]
pub struct RedisRun {
    pub bets: u64,
    pub elapsed: Duration,
}

impl RedisRun {
    pub fn bets_per_second(&self) -> f64 {
        self.bets as f64 / self.elapsed.as_secs_f64()
    }
}

/// `redis-server` on `PATH`, if there is one.
pub fn find_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

/// A group of commands sent at once, and how many replies it awaits.
pub struct Pipeline {
    bytes: Vec<u8>,
    commands: usize,
}

/// Every agency's pipelines, encoded: `RPUSH agency:N row` per bet, in
/// groups of `pipeline` commands.
pub fn encode(synth: &Synth, agencies: u32, pipeline: usize) -> Vec<Vec<Pipeline>> {
    (1..=agencies)
        .map(|agency| {
            let key = format!("agency:{agency}");
            let bets: Vec<_> = synth.bets_of(agency).collect();
            bets.chunks(pipeline)
                .map(|chunk| {
                    let mut out = Vec::new();
                    let mut row = Vec::new();
                    for b in chunk {
                        let r = b.as_ref();
                        let fields = BetFields {
                            first_name: r.first_name.as_bytes(),
                            last_name: r.last_name.as_bytes(),
                            document: r.document.as_bytes(),
                            birthdate: r.birthdate,
                            number: r.number,
                        };
                        row.clear();
                        let checked =
                            bet::check(&fields, bet::today()).expect("synthetic bets are valid");
                        push_row(&mut row, agency, &fields, checked);
                        resp_command(&mut out, &[b"RPUSH", key.as_bytes(), &row]);
                    }
                    Pipeline {
                        bytes: out,
                        commands: chunk.len(),
                    }
                })
                .collect()
        })
        .collect()
}

fn resp_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    write!(out, "*{}\r\n", args.len()).expect("memory");
    for a in args {
        write!(out, "${}\r\n", a.len()).expect("memory");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A `redis-server` of this run, in its own directory; killed when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start(server: &Path, dir: &Path) -> Result<RedisServer> {
        std::fs::create_dir_all(dir)?;
        let port = lottery_proto::support::loopback::free_port()?;
        let child = Command::new(server)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        let mut redis = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                s.write_all(b"PING\r\n")?;
                let mut line = String::new();
                BufReader::new(&mut s).read_line(&mut line)?;
                if line.starts_with("+PONG") {
                    return Ok(redis);
                }
            }
            if let Some(status) = redis.child.try_wait()? {
                bail!("redis-server exited at start: {status}");
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends every agency's pipelines over `connections` connections (agency
/// `a` on connection `a % connections`), one pipeline in flight per
/// connection, and times from the first write to the last reply.
pub fn run(port: u16, load: &[Vec<Pipeline>], connections: usize) -> Result<RedisRun> {
    let bets: u64 = load.iter().flatten().map(|p| p.commands as u64).sum();
    let mut streams = Vec::new();
    for _ in 0..connections {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        streams.push(s);
    }
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(c, mut stream)| {
                scope.spawn(move || -> io::Result<()> {
                    let mut reader = BufReader::with_capacity(1 << 16, stream.try_clone()?);
                    for agency in load.iter().skip(c).step_by(connections) {
                        for p in agency {
                            stream.write_all(&p.bytes)?;
                            read_replies(&mut reader, p.commands)?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a Redis connection thread panicked")?;
        }
        Ok(())
    })?;
    Ok(RedisRun {
        bets,
        elapsed: start.elapsed(),
    })
}

/// Reads `n` integer replies; any other reply is an error.
fn read_replies(reader: &mut impl BufRead, n: usize) -> io::Result<()> {
    let mut line = Vec::new();
    for _ in 0..n {
        line.clear();
        reader.read_until(b'\n', &mut line)?;
        if line.first() != Some(&b':') {
            return Err(io::Error::other(format!(
                "redis answered {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
    }
    Ok(())
}
