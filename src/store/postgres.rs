//! The bets kept in PostgreSQL (`STORAGE=postgres://...`): the store for a
//! deployment whose bets must outlive the central's machine, with the
//! engine's synchronous streaming replication doing the replicating.
//!
//! The same contract as [`super::csv`]: a loop iteration's bets are
//! *staged* in memory (already encoded as the rows of a binary `COPY`), and
//! a commit sends them as two transactions at once (split by agency,
//! [`super::pg_sessions`]), each `COPY lottery.bets FROM STDIN (FORMAT
//! binary)` and then its closes, and succeeds only once both `COMMIT`s have
//! returned: with `synchronous_commit = on` and a synchronous standby, that
//! is once the standby has the WAL on its disk.
//!
//! The loop only stages; the store's thread ([`super::pg_worker`]) does all
//! the talking to the database, so [`Store::start_commit`] hands the group
//! over and answers [`Started::Pending`], and the loop takes the outcome
//! when the thread wakes it. The tables and the reads are
//! [`super::pg_schema`]'s.
//!
//! A commit whose connection breaks around `COMMIT` is ambiguous: the
//! engine may have kept it. The central then rolls its counts back and the
//! agencies send those bets again, so the store keeps, per agency, the
//! count the database holds, has it re-read after every failure, and stages
//! only the bets at or past it; closes are inserted with `ON CONFLICT DO
//! NOTHING`. Nothing is stored twice (the primary key would refuse it
//! anyway) and nothing acknowledged is missing: a database found holding
//! less than was acknowledged stops the central ([`CommitError::fatal`]).
//!
//! A connection string that names no timeouts gets bounded ones
//! ([`with_timeouts`]): a database host that is gone costs a try seconds,
//! not the kernel's minutes of SYN retries.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::time::Duration;

use log::{debug, info};
use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use super::pg_schema::{self, Held};
pub use super::pg_schema::{LOTTERY, PgError, describe};
use super::pg_sessions::Split;
use super::pg_worker::{Job, Report, Worker};
use super::seam::{BatchToStage, CommitError, Finished, News, Recovery, Started, Store};
use crate::bets::bet::{self, InvalidBet};
use crate::wire::{BetFields, Date};

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's date epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// The timeouts a connection string that names none gets: how long a
/// connection attempt to one host may take, how long sent data may go
/// unacknowledged by a host, and when an idle connection is probed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVES_RETRIES: u32 = 3;
/// tokio-postgres's own keepalive idle time, which it uses when the
/// connection string names none.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// The connection string as the log lines show it: no password, no `|`.
pub fn location_of(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            };
            let ports = config.get_ports();
            match ports.get(i).or(if ports.len() == 1 {
                ports.first()
            } else {
                None
            }) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgresql://{user}@{}/{db}", hosts.join(",")).replace('|', "%7C")
}

/// Parses a `postgres://` or `postgresql://` connection string.
pub fn parse_settings(url: &str) -> Result<Config, PgError> {
    let mut config = Config::from_str(url).map_err(|e| PgError::Settings { why: describe(&e) })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // The engine's notices ("relation already exists, skipping" at each
    // start) are not the operator's business: the crate's default logs them
    // at INFO, among the central's own lines.
    config.notice_callback(|notice| debug!("PostgreSQL notice: {}", notice.message()));
    Ok(config)
}

/// The settings the store's thread connects with: `url`, with bounded
/// timeouts where it names none.
pub fn thread_settings(url: &str) -> Result<tokio_postgres::Config, PgError> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| PgError::Settings { why: describe(&e) })?;
    with_timeouts(&mut config);
    Ok(config)
}

/// Sets the timeouts `config` does not name: [`CONNECT_TIMEOUT`] per host,
/// [`TCP_USER_TIMEOUT`], and keepalives after [`KEEPALIVES_IDLE`].
pub fn with_timeouts(config: &mut tokio_postgres::Config) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_keepalives() && config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVES_INTERVAL);
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(KEEPALIVES_RETRIES);
    }
}

/// Days since 1970-01-01 of a calendar date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(d: Date) -> i64 {
    let (m, day) = (d.month as i64, d.day as i64);
    let y = d.year as i64 - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Appends one tuple of the binary `COPY` of `lottery.bets`.
pub fn push_copy_row(out: &mut Vec<u8>, agency: u32, position: u32, seq: i64, b: &BetFields<'_>) {
    out.reserve(
        2 + 8
            + 8
            + 12
            + 12
            + 12
            + b.first_name.len()
            + b.last_name.len()
            + b.document.len()
            + 8
            + 6,
    );
    out.extend_from_slice(&9i16.to_be_bytes());
    out.extend_from_slice(&4i32.to_be_bytes());
    out.extend_from_slice(&LOTTERY.to_be_bytes());
    out.extend_from_slice(&4i32.to_be_bytes());
    out.extend_from_slice(&(agency as i32).to_be_bytes());
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&(position as i64).to_be_bytes());
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    for text in [b.first_name, b.last_name, b.document] {
        out.extend_from_slice(&(text.len() as i32).to_be_bytes());
        out.extend_from_slice(text);
    }
    let days = (days_from_civil(b.birthdate) - PG_EPOCH_DAYS) as i32;
    out.extend_from_slice(&4i32.to_be_bytes());
    out.extend_from_slice(&days.to_be_bytes());
    out.extend_from_slice(&2i32.to_be_bytes());
    out.extend_from_slice(&(b.number as i16).to_be_bytes());
}

/// The loop's side of the store: the staged group, and what the database
/// holds as the thread last reported it, which the next group's positions
/// are staged against.
pub struct PgStore {
    worker: Option<Worker>,
    location: String,
    /// What the database holds: a bet below its agency's count is in the
    /// database and is not staged again.
    held: Held,
    /// The staged bets and closes, split for the sessions; `None` while the
    /// thread has them.
    split: Option<Split>,
    staged_bets: u64,
    /// Bets staged per agency (index 0 is agency 1), and the agencies with
    /// some.
    staged_per_agency: Vec<u32>,
    touched: Vec<u32>,
    /// The buffer the next group's `(agency, bets)` are handed over in.
    staged: Vec<(u32, u32)>,
    /// Bets and closes of the group under way, if one is.
    under_way: Option<u64>,
    /// The outcome of the group under way, once the thread reported it.
    outcome: Option<Finished>,
    /// What the thread learned, for the central, in the order it did.
    news: VecDeque<News>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .field("under_way", &self.under_way)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Starts the store's thread, which connects (to the read-write server
    /// among the hosts, if `target_session_attrs=read-write`), makes the
    /// tables if missing, checks they are this central's, and recovers
    /// what they hold.
    pub fn open(
        url: &str,
        agencies: u32,
        winning_number: u16,
    ) -> Result<(PgStore, Recovery), PgError> {
        let location = location_of(&parse_settings(url)?);
        let config = thread_settings(url)?;
        let (worker, held, recovery) =
            Worker::start(config, location.clone(), agencies, winning_number)?;
        Ok((
            PgStore {
                worker: Some(worker),
                location,
                held,
                split: Some(Split::new(agencies)),
                staged_bets: 0,
                staged_per_agency: vec![0; agencies as usize],
                touched: Vec::new(),
                staged: Vec::new(),
                under_way: None,
                outcome: None,
                news: VecDeque::new(),
            },
            recovery,
        ))
    }

    fn worker(&self) -> &Worker {
        self.worker
            .as_ref()
            .expect("the store's thread runs until close")
    }

    /// Takes the outcome the thread sent: the buffers back, the counts
    /// moved on (or re-read), the finished commit.
    fn finished(&mut self, outcome: super::pg_worker::Outcome) -> Finished {
        let bets = self.under_way.take().unwrap_or(0);
        if outcome.finished.result.is_ok() {
            for &(agency, n) in &outcome.staged {
                self.held.stored[agency as usize - 1] += n;
            }
            self.held.next_seq += bets as i64;
        }
        if let Some(held) = outcome.held {
            // Read again after a failure: the central's counts follow.
            self.news.push_back(News::Held(
                (1..=held.stored.len() as u32)
                    .map(|a| (a, held.stored[a as usize - 1], held.closed[a as usize - 1]))
                    .collect(),
            ));
            self.held = held;
        }
        self.split = Some(outcome.split);
        self.staged = outcome.staged;
        self.staged.clear();
        outcome.finished
    }

    /// Takes in every report the thread sent: a commit's outcome is kept
    /// for [`Store::finish_commit`], news for [`Store::news`].
    fn take_reports(&mut self, wait: Option<Duration>) {
        let mut wait = wait;
        loop {
            let report = match wait.take() {
                Some(timeout) if self.outcome.is_none() => self.worker().wait_report(timeout),
                _ => self.worker().try_report(),
            };
            match report {
                None => return,
                Some(Report::Committed(outcome)) => {
                    let finished = self.finished(*outcome);
                    self.outcome = Some(finished);
                }
                Some(Report::News(news)) => self.news.push_back(news),
                Some(Report::NextSeq(seq)) => self.held.next_seq = self.held.next_seq.max(seq),
            }
        }
    }

    fn split(&mut self) -> &mut Split {
        self.split
            .as_mut()
            .expect("nothing is staged while a commit is under way")
    }
}

impl Store for PgStore {
    /// The bets are checked in a walk of their own before any is staged:
    /// here the engine's COPY, not the central's walk, is the cost.
    fn stage_bets<'b>(
        &mut self,
        batch: BatchToStage<'b>,
        winners: &mut Vec<&'b [u8]>,
    ) -> Result<(), InvalidBet> {
        let BatchToStage {
            agency,
            first,
            bets,
            skip,
            today,
            winning,
        } = batch;
        let winners_mark = winners.len();
        for (index, b) in bets.iter().enumerate().skip(skip) {
            if let Err(why) = bet::check(&b, today) {
                winners.truncate(winners_mark);
                return Err(InvalidBet { index, why });
            }
            // Every bet from `skip` counts in the central's lottery, those
            // the database kept already as well.
            if b.number == winning {
                winners.push(b.document);
            }
        }
        let index = agency as usize - 1;
        let in_db = self.held.stored[index];
        for (i, b) in bets.iter().enumerate().skip(skip) {
            let position = first + i as u32;
            let next = in_db + self.staged_per_agency[index];
            if position < next {
                // Kept by a commit reported failed: in the database already.
                continue;
            }
            let seq = self.held.next_seq + self.staged_bets as i64;
            self.split().push_row(agency, position, |copy| {
                push_copy_row(copy, agency, position, seq, &b)
            });
            if self.staged_per_agency[index] == 0 {
                self.touched.push(agency);
            }
            self.staged_per_agency[index] += 1;
            self.staged_bets += 1;
        }
        Ok(())
    }

    /// Beside the agency's bets of this group, in the same transaction.
    fn stage_close(&mut self, agency: u32, total: u32) {
        self.split().push_close(agency, total);
    }

    fn staged_bets(&self) -> u64 {
        self.staged_bets
    }

    fn has_staged(&self) -> bool {
        self.staged_bets > 0 || self.split.as_ref().is_some_and(Split::has_closes)
    }

    fn start_commit(&mut self, draws: bool) -> Started {
        let split = self.split.take().expect("one commit under way at a time");
        let mut staged = std::mem::take(&mut self.staged);
        for agency in self.touched.drain(..) {
            let n = std::mem::take(&mut self.staged_per_agency[agency as usize - 1]);
            staged.push((agency, n));
        }
        let bets = std::mem::take(&mut self.staged_bets);
        self.under_way = Some(bets);
        let job = Job {
            split,
            staged,
            bets,
            draws,
        };
        match self.worker().send(job) {
            Ok(()) => Started::Pending,
            Err(mut job) => {
                // The thread is gone (it only ends with the store): nothing
                // of the group can be kept.
                job.split.clear();
                self.split = Some(job.split);
                self.under_way = None;
                job.staged.clear();
                self.staged = job.staged;
                Started::Done(Finished {
                    result: Err(CommitError::failed(format!(
                        "{}: the store's thread has ended",
                        self.location
                    ))),
                    drawn: None,
                })
            }
        }
    }

    fn finish_commit(&mut self) -> Option<Finished> {
        self.take_reports(None);
        self.outcome.take()
    }

    fn wait_commit(&mut self, timeout: Duration) -> Option<Finished> {
        if self.under_way.is_some() {
            self.take_reports(Some(timeout));
        }
        self.outcome.take()
    }

    fn shared(&self) -> bool {
        true
    }

    fn read_counts(&mut self, agencies: &[u32]) {
        self.worker().read_counts(agencies.to_vec());
    }

    /// A count read raises the one bets are staged against: the bets below
    /// it are in the database, whichever central stored them.
    fn news(&mut self) -> Option<News> {
        self.take_reports(None);
        if self.under_way.is_some() || self.outcome.is_some() {
            return None;
        }
        let news = self.news.pop_front()?;
        match &news {
            News::Counts(counts) | News::Held(counts) => {
                for &(agency, stored, _) in counts {
                    let held = &mut self.held.stored[agency as usize - 1];
                    *held = (*held).max(stored);
                }
            }
            News::Drawn(agencies) => {
                for (held, a) in self.held.stored.iter_mut().zip(agencies) {
                    *held = (*held).max(a.stored);
                }
            }
        }
        Some(news)
    }

    fn register(&mut self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        self.worker().register(registry, token)
    }

    fn location(&self) -> String {
        format!("base_de_datos: {}", self.location)
    }

    fn close(mut self: Box<Self>) -> std::io::Result<()> {
        // Every commit is durable once it returned: nothing to flush. A
        // commit still under way is not waited for; nothing of it was
        // acknowledged.
        if let Some(worker) = self.worker.take() {
            worker.stop(self.under_way.is_some());
        }
        info!(
            "action: cerrar_base | result: success | base_de_datos: {}",
            self.location
        );
        Ok(())
    }
}

/// Refuses tables of the schema `lottery` that are not of the shape this
/// store makes (so another program's `bets` is never read as this lottery's).
fn check_tables(client: &mut Client, location: &str) -> Result<(), PgError> {
    let rows = client
        .query(pg_schema::COLUMNS, &[])
        .map_err(|e| PgError::Query {
            location: location.into(),
            why: describe(&e),
        })?;
    pg_schema::check_columns(&rows, location)
}

/// Writes the lottery's bets as `bets.csv`, byte for byte as the CSV store
/// writes them, in the order the central stored them (`seq`). Returns how
/// many bets it wrote.
pub fn export_csv(
    config: &Config,
    out: &mut impl Write,
) -> Result<u64, Box<dyn std::error::Error>> {
    let location = location_of(config);
    let mut client = config.connect(NoTls).map_err(|e| PgError::Connect {
        location: location.clone(),
        why: describe(&e),
    })?;
    check_tables(&mut client, &location)?;
    let mut rows = client.query_raw(
        "SELECT agency, first_name, last_name, document, (birthdate - DATE '1970-01-01')::integer, number \
         FROM lottery.bets WHERE lottery = $1 ORDER BY seq",
        [&LOTTERY],
    )?;
    let mut line = Vec::with_capacity(1 << 16);
    let mut count = 0u64;
    use postgres::fallible_iterator::FallibleIterator;
    while let Some(row) = rows.next()? {
        let (agency, first_name, last_name, document, days, number): (
            i32,
            &str,
            &str,
            &str,
            i32,
            i16,
        ) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
        );
        let bet = BetFields {
            first_name: first_name.as_bytes(),
            last_name: last_name.as_bytes(),
            document: document.as_bytes(),
            birthdate: bet::civil_from_days(days as i64),
            number: number as u16,
        };
        let latest = Date {
            year: u16::MAX,
            month: 12,
            day: 31,
        };
        let checked = bet::check(&bet, latest).map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a stored bet of agency {agency} is not valid: {why}"),
            )
        })?;
        super::csv::push_row(&mut line, agency as u32, &bet, checked);
        count += 1;
        if line.len() >= 1 << 16 {
            out.write_all(&line)?;
            line.clear();
        }
    }
    out.write_all(&line)?;
    out.flush()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_go_to_days_and_back() {
        for days in [-25_567, -1, 0, 1, 10_957, 11_016, 19_000, 20_000, 2_932_896] {
            assert_eq!(days_from_civil(bet::civil_from_days(days)), days);
        }
        let d = Date {
            year: 2000,
            month: 1,
            day: 1,
        };
        assert_eq!(days_from_civil(d), PG_EPOCH_DAYS);
    }

    #[test]
    fn a_copy_row_has_nine_fields_in_network_order() {
        let mut out = Vec::new();
        let b = BetFields {
            first_name: b"Ana",
            last_name: b"Lorca",
            document: b"123",
            birthdate: Date {
                year: 2000,
                month: 1,
                day: 2,
            },
            number: 7574,
        };
        push_copy_row(&mut out, 3, 5, 9, &b);
        let mut expected = vec![0, 9];
        expected.extend([0, 0, 0, 4, 0, 0, 0, 1]);
        expected.extend([0, 0, 0, 4, 0, 0, 0, 3]);
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5]);
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9]);
        expected.extend([0, 0, 0, 3]);
        expected.extend(b"Ana");
        expected.extend([0, 0, 0, 5]);
        expected.extend(b"Lorca");
        expected.extend([0, 0, 0, 3]);
        expected.extend(b"123");
        expected.extend([0, 0, 0, 4, 0, 0, 0, 1]);
        expected.extend([0, 0, 0, 2]);
        expected.extend(7574i16.to_be_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn the_location_names_every_host_and_no_password() {
        let c = parse_settings(
            "postgresql://lot:secret@10.0.0.1:5432,10.0.0.2:5433/bets?target_session_attrs=read-write",
        )
        .unwrap();
        let l = location_of(&c);
        assert_eq!(l, "postgresql://lot@10.0.0.1:5432,10.0.0.2:5433/bets");
        assert!(!l.contains("secret"));
        assert_eq!(
            c.get_target_session_attrs(),
            postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert!(parse_settings("postgres://x@h/db?sslmode=nonsense").is_err());
    }

    #[test]
    fn a_connection_string_without_timeouts_gets_bounded_ones_and_keeps_its_own() {
        let c = thread_settings("postgresql://lot@10.0.0.1/bets").unwrap();
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(c.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(c.get_keepalives_idle(), KEEPALIVES_IDLE);
        let c = thread_settings(
            "postgresql://lot@10.0.0.1/bets?connect_timeout=30&tcp_user_timeout=60&keepalives_idle=90",
        )
        .unwrap();
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(30)));
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(60)));
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(90));
    }
}
