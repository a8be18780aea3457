//! A central started for one bench run, in a directory of its own.
//!
//! The bench owns the process: it picks a free port on 127.0.0.1, points
//! `BETS_FILE` into a fresh temporary directory, sends the central's log to a
//! file there, waits until the port accepts, and at the end stops it with
//! SIGTERM as an operator would. Dropping a [`Central`] kills a central still
//! running and removes the directory (unless asked to keep it), so a failed
//! run leaves nothing behind. With [`CentralTls`], the central's certificate,
//! key and client CA are written into that directory and named by
//! `TLS_CERT`, `TLS_KEY` and `TLS_CLIENT_CA`: it then serves mutual TLS only.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

/// How to start the central.
#[derive(Clone, Debug)]
pub struct CentralOptions {
    /// The `lottery-server` binary.
    pub bin: PathBuf,
    pub agencies: u32,
    pub winning_number: u16,
    /// `LOGGING_LEVEL`: WARN by default, so the per-batch INFO lines do not
    /// weigh on what is measured.
    pub log_level: String,
    /// More `KEY=VALUE` settings, applied last.
    pub extra_env: Vec<(String, String)>,
    /// Keep the directory (bets file, journal, log) after the run.
    pub keep_dir: bool,
    /// Serve mutual TLS with these (PEM); plain TCP without.
    pub tls: Option<CentralTls>,
}

/// The central's side of mutual TLS, as PEM text.
#[derive(Clone, Debug)]
pub struct CentralTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// The CA the agencies' certificates must chain to.
    pub client_ca_pem: String,
}

/// A running central.
pub struct Central {
    child: Option<Child>,
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub bets_file: PathBuf,
    log_path: PathBuf,
    keep_dir: bool,
}

impl Central {
    pub fn start(opts: &CentralOptions) -> Result<Central> {
        if !opts.bin.exists() {
            bail!(
                "{} is missing: build it first (cargo build --release --workspace)",
                opts.bin.display()
            );
        }
        let dir = fresh_dir()?;
        let port = lottery_proto::support::loopback::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let bets_file = dir.join("bets.csv");
        let log_path = dir.join("central.log");
        let log = File::create(&log_path)?;
        let mut cmd = Command::new(&opts.bin);
        cmd.current_dir(&dir)
            .env("SERVER_IP", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("AGENCIES", opts.agencies.to_string())
            .env("BETS_FILE", &bets_file)
            .env("WINNING_NUMBER", opts.winning_number.to_string())
            .env("LOGGING_LEVEL", &opts.log_level)
            // Every agency connects at once: a short listen queue would drop
            // SYNs and cost whole seconds of retransmission.
            .env("SERVER_LISTEN_BACKLOG", "4096")
            .env(
                "MAX_CONNECTIONS",
                (u64::from(opts.agencies) + 64).to_string(),
            )
            // Early agencies wait parked for the whole ingest of a large run,
            // and the last one idles while the others park.
            .env("PARK_TIMEOUT_MS", "600000")
            .env("IDLE_TIMEOUT_MS", "600000")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(tls) = &opts.tls {
            for (key, file, pem) in [
                ("TLS_CERT", "server.pem", &tls.cert_pem),
                ("TLS_KEY", "server.key", &tls.key_pem),
                ("TLS_CLIENT_CA", "ca.pem", &tls.client_ca_pem),
            ] {
                let path = dir.join(file);
                // Owner-only, like the keys lottery-certs writes.
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .and_then(|mut f| f.write_all(pem.as_bytes()))
                    .with_context(|| format!("writing {}", path.display()))?;
                cmd.env(key, &path);
            }
            // 1,000 handshakes queue behind each other at the start.
            cmd.env("TLS_HANDSHAKE_TIMEOUT_MS", "600000");
        }
        for (key, value) in &opts.extra_env {
            cmd.env(key, value);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", opts.bin.display()))?;
        let mut central = Central {
            child: Some(child),
            dir,
            addr,
            bets_file,
            log_path,
            keep_dir: opts.keep_dir,
        };
        central.wait_until_listening(Duration::from_secs(20))?;
        Ok(central)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn wait_until_listening(&mut self, limit: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                let status = status?;
                bail!(
                    "the central exited at start-up ({status}):\n{}",
                    self.log_tail(20)
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "the central did not listen on {} within {limit:?}:\n{}",
                    self.addr,
                    self.log_tail(20)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the central with SIGTERM and waits for it to exit.
    pub fn stop(&mut self, limit: Duration) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the central was already stopped");
        };
        // The child is ours and not yet reaped, so its pid names it.
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the central did not exit within {limit:?} of SIGTERM:\n{}",
                    self.log_tail(20)
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last `lines` lines of the central's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Rows in a bets file. A valid bet holds no control character, so no quoted
/// field spans lines and rows are newline-terminated lines.
pub fn count_rows(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut rows = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(rows),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        rows += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

fn fresh_dir() -> io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("lottery-bench-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_counted_by_line() {
        let dir = fresh_dir().unwrap();
        let path = dir.join("bets.csv");
        fs::write(&path, "1,\"a, b\",c,2000-01-01,1\n2,x,y,2000-01-01,2\n").unwrap();
        assert_eq!(count_rows(&path).unwrap(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let opts = CentralOptions {
            bin: PathBuf::from("/nonexistent/lottery-server"),
            agencies: 1,
            winning_number: 7574,
            log_level: "WARN".into(),
            extra_env: vec![],
            keep_dir: false,
            tls: None,
        };
        let err = Central::start(&opts).err().unwrap().to_string();
        assert!(err.contains("is missing"), "{err}");
    }
}
