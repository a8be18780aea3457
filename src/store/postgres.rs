//! The bets kept in PostgreSQL (`STORAGE=postgres://...`): the store for a
//! deployment whose bets must outlive the central's machine, with the
//! engine's synchronous streaming replication doing the replicating.
//!
//! The same contract as [`super::csv`]: a loop iteration's bets are
//! *staged* in memory (already encoded as the rows of a binary `COPY`), and
//! [`Store::commit`] sends them as two transactions at once (split by
//! agency, [`super::pg_sessions`]), each `COPY lottery.bets FROM STDIN
//! (FORMAT binary)` and then its closes, and returns `Ok` only once both
//! `COMMIT`s have returned: with `synchronous_commit = on` and a
//! synchronous standby, that is once the standby has the WAL on its disk.
//!
//! The tables live in the schema `lottery`, created if missing:
//! `lottery.lottery` (the one lottery of the database: its id, how many
//! agencies, the winning number), `lottery.bets` (the course's fields plus
//! agency, position and `seq`, the bet's place in the order the central
//! stored them, which `lottery-export` writes `bets.csv` in), primary key
//! `(lottery, agency, position)`, and `lottery.closed_agencies`. A table of
//! another shape, or a lottery made for another number of agencies, is an
//! error at open: nothing is mixed in.
//!
//! A commit whose connection breaks around `COMMIT` is ambiguous: the
//! engine may have kept it. The central then rolls its counts back and the
//! agencies send those bets again, so the store keeps, per agency, the
//! count the database holds, re-reads it from the database after every
//! failure, and stages only the bets at or past it; closes are inserted
//! with `ON CONFLICT DO NOTHING`. Nothing is stored twice (the primary key
//! would refuse it anyway) and nothing acknowledged is missing.
//!
//! The open, the recovery and the reads use the synchronous `postgres`
//! crate, the commits `tokio-postgres` sessions on a current-thread runtime
//! that runs only inside a commit: either way on the calling thread, so the
//! central's loop stays one thread, blocked during a commit as it is during
//! `fdatasync`.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::time::{Duration, Instant};

use log::{debug, info};
use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use super::pg_sessions::{Sessions, SessionsError, Split};
use super::seam::{BatchToStage, CommitError, CommitStats, RecoveredAgency, Recovery, Store};
use crate::bets::bet::{self, InvalidBet};
use crate::wire::{BetFields, Date};

/// The one lottery of a database (one lottery per deployment).
const LOTTERY: i32 = 1;

/// The tables this store makes, as `information_schema.columns` lists them.
const TABLES: &[(&str, &[(&str, &str)])] = &[
    (
        "lottery",
        &[
            ("id", "integer"),
            ("agencies", "integer"),
            ("winning_number", "smallint"),
        ],
    ),
    (
        "bets",
        &[
            ("lottery", "integer"),
            ("agency", "integer"),
            ("position", "bigint"),
            ("seq", "bigint"),
            ("first_name", "text"),
            ("last_name", "text"),
            ("document", "text"),
            ("birthdate", "date"),
            ("number", "smallint"),
        ],
    ),
    (
        "closed_agencies",
        &[
            ("lottery", "integer"),
            ("agency", "integer"),
            ("total", "bigint"),
        ],
    ),
];

const CREATE: &str = "
CREATE SCHEMA IF NOT EXISTS lottery;
CREATE TABLE IF NOT EXISTS lottery.lottery (
    id integer PRIMARY KEY,
    agencies integer NOT NULL,
    winning_number smallint NOT NULL
);
CREATE TABLE IF NOT EXISTS lottery.bets (
    lottery integer NOT NULL,
    agency integer NOT NULL,
    position bigint NOT NULL,
    seq bigint NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    document text NOT NULL,
    birthdate date NOT NULL,
    number smallint NOT NULL,
    PRIMARY KEY (lottery, agency, position)
);
CREATE TABLE IF NOT EXISTS lottery.closed_agencies (
    lottery integer NOT NULL,
    agency integer NOT NULL,
    total bigint NOT NULL,
    PRIMARY KEY (lottery, agency)
);
";

const COPY_BETS: &str = "COPY lottery.bets (lottery, agency, position, seq, first_name, last_name, document, birthdate, number) FROM STDIN (FORMAT binary)";

const INSERT_CLOSES: &str = "INSERT INTO lottery.closed_agencies (lottery, agency, total) \
     SELECT $1, a, t FROM unnest($2::integer[], $3::bigint[]) AS c(a, t) ON CONFLICT DO NOTHING";

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's date epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// The first wait after a failure, and the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why the database could not be opened or recovered.
#[derive(Debug)]
pub enum PgError {
    /// The connection string does not parse.
    Settings { why: String },
    /// No server of the connection string took the connection (down,
    /// refusing, wrong credentials, no read-write server).
    Connect { location: String, why: String },
    /// A statement of the open or the recovery failed.
    Query { location: String, why: String },
    /// A table of the schema `lottery` that this store did not make.
    ForeignTable {
        location: String,
        table: String,
        found: Vec<(String, String)>,
    },
    /// The database holds a lottery made with other settings.
    OtherLottery { location: String, why: String },
    /// Rows that disagree with each other (a gap, a close of another count).
    Corrupt { location: String, why: String },
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Settings { why } => {
                write!(f, "STORAGE is not a usable connection string: {why}")
            }
            PgError::Connect { location, why } => write!(
                f,
                "cannot connect to PostgreSQL at {location}: {why}. Check that a read-write server \
                 is up at one of those hosts and that the user and password in STORAGE are right"
            ),
            PgError::Query { location, why } => write!(f, "PostgreSQL at {location}: {why}"),
            PgError::ForeignTable {
                location,
                table,
                found,
            } => {
                let found: Vec<String> = found.iter().map(|(c, t)| format!("{c} {t}")).collect();
                let expected: Vec<String> = TABLES
                    .iter()
                    .find(|(name, _)| name == table)
                    .map(|(_, cols)| cols.iter().map(|(c, t)| format!("{c} {t}")).collect())
                    .unwrap_or_default();
                write!(
                    f,
                    "PostgreSQL at {location}: table lottery.{table} is not one this central made: it has \
                     columns ({}) where the central expects ({}). Nothing was read or written; use another \
                     database, or move that table out of the schema lottery",
                    found.join(", "),
                    expected.join(", ")
                )
            }
            PgError::OtherLottery { location, why } => write!(
                f,
                "PostgreSQL at {location} holds another lottery: {why}. To start a new lottery use \
                 another database (or drop the schema lottery); to go on with that one, start the \
                 central with its settings"
            ),
            PgError::Corrupt { location, why } => {
                write!(f, "PostgreSQL at {location} holds inconsistent bets: {why}")
            }
        }
    }
}

impl std::error::Error for PgError {}

/// What went wrong in a call to the database, with the server's own words
/// when it said something.
pub fn describe(e: &postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    };
    // The log lines keep one shape: `|` only between pairs.
    text.replace('|', "/")
}

fn describe_sessions(e: &SessionsError) -> String {
    match e {
        SessionsError::Runtime(e) => format!("cannot start the sessions' runtime: {e}"),
        SessionsError::Postgres(e) => describe(e),
    }
}

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
    // The engine's notices ("relation already exists, skipping" at each
    // start) are not the operator's business: the crate's default logs them
    // at INFO, among the central's own lines.
    config.notice_callback(|notice| debug!("PostgreSQL notice: {}", notice.message()));
    Ok(config)
}

/// When to try the database again after a failure: 100 ms, doubling up to
/// 5 s, back to nothing once a commit goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    delay: Duration,
    next_try: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            delay: BACKOFF_FIRST,
            next_try: None,
        }
    }
}

impl Backoff {
    /// Whether a try may be made at `now`; if not, how long to wait.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.next_try
            .filter(|&at| at > now)
            .map(|at| at.duration_since(now))
    }

    /// A try failed at `now`: the next one waits longer.
    pub fn failed(&mut self, now: Instant) {
        self.next_try = Some(now + self.delay);
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }

    pub fn succeeded(&mut self) {
        *self = Backoff::default();
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

/// What the database holds of the lottery.
#[derive(Debug, Default)]
struct Held {
    /// Bets per agency (index 0 is agency 1).
    stored: Vec<u32>,
    /// The `seq` of the next bet.
    next_seq: i64,
}

pub struct PgStore {
    config: Config,
    /// The same settings, for the sessions the commits run on.
    sessions_config: tokio_postgres::Config,
    location: String,
    /// For the recovery and the reads; `None` after a failure, until a
    /// commit reconnects.
    client: Option<Client>,
    /// The commits' connections; `None` with `client`.
    sessions: Option<Sessions>,
    agencies: u32,
    winning_number: u16,
    /// What the database holds, as of the last commit or recovery: a bet
    /// below its agency's count is in the database and is not staged again.
    held: Held,
    /// The staged bets and closes, split for the sessions.
    split: Split,
    staged_bets: u64,
    /// Bets staged per agency, and the agencies in it.
    staged_per_agency: Vec<u32>,
    touched: Vec<u32>,
    backoff: Backoff,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects (to the read-write server among the hosts, if
    /// `target_session_attrs=read-write`), makes the tables if missing,
    /// checks they are this central's, and recovers what they hold.
    pub fn open(
        url: &str,
        agencies: u32,
        winning_number: u16,
    ) -> Result<(PgStore, Recovery), PgError> {
        let config = parse_settings(url)?;
        let sessions_config = tokio_postgres::Config::from_str(url)
            .map_err(|e| PgError::Settings { why: describe(&e) })?;
        let location = location_of(&config);
        let mut client = config.connect(NoTls).map_err(|e| PgError::Connect {
            location: location.clone(),
            why: describe(&e),
        })?;
        let query = |e: postgres::Error| PgError::Query {
            location: location.clone(),
            why: describe(&e),
        };
        check_tables(&mut client, &location)?;
        client.batch_execute(CREATE).map_err(query)?;
        // Kept small: only the winning bets are in it, so the draw reads
        // its winners without a scan and the ingest barely pays for it.
        client
            .batch_execute(&format!(
                "CREATE INDEX IF NOT EXISTS bets_winning_{winning_number} ON lottery.bets \
                 (lottery, agency, position) INCLUDE (document) WHERE number = {winning_number}"
            ))
            .map_err(query)?;
        check_lottery(&mut client, &location, agencies, winning_number)?;
        let (held, recovery) = recover(&mut client, &location, agencies, winning_number)?;
        let sessions = Sessions::connect(&sessions_config).map_err(|e| PgError::Connect {
            location: location.clone(),
            why: describe_sessions(&e),
        })?;
        Ok((
            PgStore {
                config,
                sessions_config,
                location,
                client: Some(client),
                sessions: Some(sessions),
                agencies,
                winning_number,
                held,
                split: Split::new(agencies),
                staged_bets: 0,
                staged_per_agency: vec![0; agencies as usize],
                touched: Vec::new(),
                backoff: Backoff::default(),
            },
            recovery,
        ))
    }

    fn clear_staged(&mut self) {
        self.split.clear();
        self.staged_bets = 0;
        for agency in self.touched.drain(..) {
            self.staged_per_agency[agency as usize - 1] = 0;
        }
    }

    /// Connects again after a failure, and re-reads what the database holds
    /// (a commit that failed around `COMMIT` may have been kept). Returns
    /// whether the database has passed the counts this group was staged
    /// against: then the group is refused, but the connection is good.
    fn reconnect(&mut self) -> Result<bool, CommitError> {
        let mut client = self.config.connect(NoTls).map_err(|e| {
            CommitError(format!("cannot connect to {}: {}", self.location, describe(&e)).into())
        })?;
        let held = read_held(&mut client, self.agencies).map_err(|e| {
            CommitError(format!("cannot read {}: {}", self.location, describe(&e)).into())
        })?;
        let sessions = Sessions::connect(&self.sessions_config).map_err(|e| {
            CommitError(
                format!(
                    "cannot connect to {}: {}",
                    self.location,
                    describe_sessions(&e)
                )
                .into(),
            )
        })?;
        let passed = held.stored != self.held.stored;
        self.held = held;
        self.client = Some(client);
        self.sessions = Some(sessions);
        Ok(passed)
    }

    /// One try at the staged group: connected again first if the last try
    /// failed and the backoff allows it.
    fn try_commit(&mut self) -> Result<(), CommitError> {
        if self.client.is_none() {
            // Commits within the backoff are refused without a try, and do
            // not push the next try further away.
            if let Some(wait) = self.backoff.wait(Instant::now()) {
                return Err(CommitError(
                    format!(
                        "PostgreSQL at {} unavailable, next try in {} ms",
                        self.location,
                        wait.as_millis()
                    )
                    .into(),
                ));
            }
            match self.reconnect() {
                Err(e) => {
                    self.backoff.failed(Instant::now());
                    return Err(e);
                }
                Ok(true) => {
                    return Err(CommitError(
                        "the database kept a commit that was reported failed; this group is \
                         refused and the agencies' retries store what is missing"
                            .into(),
                    ));
                }
                Ok(false) => {}
            }
        }
        if let Err(e) = self.send() {
            // Whatever the connections' state (a share may have committed),
            // start again from new ones and from what the database says it
            // holds.
            self.client = None;
            self.sessions = None;
            self.backoff.failed(Instant::now());
            return Err(CommitError(
                format!("{}: {}", self.location, describe(&e)).into(),
            ));
        }
        self.backoff.succeeded();
        Ok(())
    }

    fn send(&mut self) -> Result<(), postgres::Error> {
        let sessions = self.sessions.as_mut().expect("connected");
        sessions.commit(&mut self.split, COPY_BETS, INSERT_CLOSES, LOTTERY)
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
            self.split.push_row(agency, |copy| {
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
        self.split.push_close(agency, total);
    }

    fn staged_bets(&self) -> u64 {
        self.staged_bets
    }

    fn has_staged(&self) -> bool {
        self.staged_bets > 0 || self.split.has_closes()
    }

    fn commit(&mut self) -> Result<CommitStats, CommitError> {
        let stats = CommitStats {
            bets: self.staged_bets,
            closes: self
                .split
                .shares()
                .iter()
                .map(|s| s.closes().len() as u64)
                .sum(),
        };
        let result = self.try_commit();
        if result.is_ok() {
            for &agency in &self.touched {
                let index = agency as usize - 1;
                self.held.stored[index] += self.staged_per_agency[index];
            }
            self.held.next_seq += self.staged_bets as i64;
        }
        self.clear_staged();
        result.map(|()| stats)
    }

    fn location(&self) -> String {
        format!("base_de_datos: {}", self.location)
    }

    /// One query, served by the partial index of the winning bets.
    fn drawn_winners(&mut self) -> Option<Result<Vec<Vec<Box<str>>>, CommitError>> {
        let result = match self.client.as_mut() {
            Some(client) => read_winners(client, self.agencies, self.winning_number)
                .map_err(|e| CommitError(format!("{}: {}", self.location, describe(&e)).into())),
            None => Err(CommitError(
                format!("{}: not connected", self.location).into(),
            )),
        };
        Some(result)
    }

    fn close(self: Box<Self>) -> std::io::Result<()> {
        // Every commit is durable once it returned: nothing to flush.
        info!(
            "action: cerrar_base | result: success | base_de_datos: {}",
            self.location
        );
        Ok(())
    }
}

/// Refuses tables of the schema `lottery` that are not of the shape this
/// store makes (so another program's `bets` is never written into).
fn check_tables(client: &mut Client, location: &str) -> Result<(), PgError> {
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'lottery' ORDER BY table_name, ordinal_position",
            &[],
        )
        .map_err(|e| PgError::Query {
            location: location.into(),
            why: describe(&e),
        })?;
    let columns: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    match foreign_table(&columns) {
        Some((table, found)) => Err(PgError::ForeignTable {
            location: location.into(),
            table,
            found,
        }),
        None => Ok(()),
    }
}

/// The first of this store's tables present with other columns than it
/// makes, with the columns it has. Pure.
pub fn foreign_table(
    columns: &[(String, String, String)],
) -> Option<(String, Vec<(String, String)>)> {
    for (table, expected) in TABLES {
        let found: Vec<(String, String)> = columns
            .iter()
            .filter(|(t, _, _)| t == table)
            .map(|(_, c, ty)| (c.clone(), ty.clone()))
            .collect();
        let same = found.len() == expected.len()
            && found
                .iter()
                .zip(expected.iter())
                .all(|((c, t), (ec, et))| c == ec && t == et);
        if !found.is_empty() && !same {
            return Some((table.to_string(), found));
        }
    }
    None
}

/// Records the lottery, or checks the one recorded is this central's.
fn check_lottery(
    client: &mut Client,
    location: &str,
    agencies: u32,
    winning_number: u16,
) -> Result<(), PgError> {
    let query = |e: postgres::Error| PgError::Query {
        location: location.into(),
        why: describe(&e),
    };
    client
        .execute(
            "INSERT INTO lottery.lottery (id, agencies, winning_number) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
            &[&LOTTERY, &(agencies as i32), &(winning_number as i16)],
        )
        .map_err(query)?;
    let rows = client
        .query(
            "SELECT id, agencies, winning_number FROM lottery.lottery ORDER BY id",
            &[],
        )
        .map_err(query)?;
    let other = |why: String| PgError::OtherLottery {
        location: location.into(),
        why,
    };
    if rows.len() != 1 {
        return Err(other(format!(
            "{} lotteries in lottery.lottery",
            rows.len()
        )));
    }
    let (id, held_agencies, held_number): (i32, i32, i16) =
        (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    if id != LOTTERY {
        return Err(other(format!("its lottery is number {id}")));
    }
    if held_agencies != agencies as i32 {
        return Err(other(format!(
            "it was made for AGENCIES={held_agencies}, but this central expects AGENCIES={agencies}"
        )));
    }
    if held_number != winning_number as i16 {
        return Err(other(format!(
            "it was made for WINNING_NUMBER={held_number}, but this central has WINNING_NUMBER={winning_number}"
        )));
    }
    Ok(())
}

/// Counts per agency (checked gap-free) and the next `seq`.
fn read_held(client: &mut Client, agencies: u32) -> Result<Held, postgres::Error> {
    let mut held = Held {
        stored: vec![0; agencies as usize],
        next_seq: 0,
    };
    for row in client.query(
        "SELECT agency, count(*), max(position), max(seq) FROM lottery.bets WHERE lottery = $1 GROUP BY agency",
        &[&LOTTERY],
    )? {
        let (agency, count, max_position, max_seq): (i32, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if agency >= 1 && agency as u32 <= agencies && count == max_position + 1 {
            held.stored[agency as usize - 1] = count as u32;
        } else {
            // Checked by `recover`; here only counts that cannot be trusted.
            held.stored = vec![u32::MAX; agencies as usize];
        }
        held.next_seq = held.next_seq.max(max_seq + 1);
    }
    Ok(held)
}

fn read_winners(
    client: &mut Client,
    agencies: u32,
    winning_number: u16,
) -> Result<Vec<Vec<Box<str>>>, postgres::Error> {
    let mut winners = vec![Vec::new(); agencies as usize];
    for row in client.query(
        "SELECT agency, document FROM lottery.bets WHERE lottery = $1 AND number = $2 ORDER BY agency, position",
        &[&LOTTERY, &(winning_number as i16)],
    )? {
        let (agency, document): (i32, &str) = (row.get(0), row.get(1));
        if let Some(w) = winners.get_mut((agency as usize).wrapping_sub(1)) {
            w.push(document.into());
        }
    }
    Ok(winners)
}

fn recover(
    client: &mut Client,
    location: &str,
    agencies: u32,
    winning_number: u16,
) -> Result<(Held, Recovery), PgError> {
    let query = |e: postgres::Error| PgError::Query {
        location: location.into(),
        why: describe(&e),
    };
    let corrupt = |why: String| PgError::Corrupt {
        location: location.into(),
        why,
    };
    let mut held = Held {
        stored: vec![0; agencies as usize],
        next_seq: 0,
    };
    for row in client
        .query(
            "SELECT agency, count(*), max(position), max(seq) FROM lottery.bets WHERE lottery = $1 GROUP BY agency",
            &[&LOTTERY],
        )
        .map_err(query)?
    {
        let (agency, count, max_position, max_seq): (i32, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if agency < 1 || agency as u32 > agencies {
            return Err(PgError::OtherLottery {
                location: location.into(),
                why: format!("it holds bets of agency {agency}, but this central expects AGENCIES={agencies}"),
            });
        }
        if count != max_position + 1 {
            return Err(corrupt(format!(
                "agency {agency} has {count} bets but positions up to {max_position}"
            )));
        }
        held.stored[agency as usize - 1] = count as u32;
        held.next_seq = held.next_seq.max(max_seq + 1);
    }
    let winners = read_winners(client, agencies, winning_number).map_err(query)?;
    let mut recovery = Recovery {
        agencies: held
            .stored
            .iter()
            .zip(winners)
            .map(|(&stored, winners)| RecoveredAgency {
                stored,
                closed: false,
                winners,
            })
            .collect(),
    };
    for row in client
        .query(
            "SELECT agency, total FROM lottery.closed_agencies WHERE lottery = $1",
            &[&LOTTERY],
        )
        .map_err(query)?
    {
        let (agency, total): (i32, i64) = (row.get(0), row.get(1));
        let Some(a) = recovery.agencies.get_mut((agency as usize).wrapping_sub(1)) else {
            return Err(PgError::OtherLottery {
                location: location.into(),
                why: format!(
                    "it closed agency {agency}, but this central expects AGENCIES={agencies}"
                ),
            });
        };
        if total != a.stored as i64 {
            return Err(corrupt(format!(
                "agency {agency} closed with {total} bets but {} are stored",
                a.stored
            )));
        }
        a.closed = true;
    }
    Ok((held, recovery))
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
    fn the_backoff_doubles_up_to_five_seconds_and_resets_on_success() {
        let mut b = Backoff::default();
        let t = Instant::now();
        assert_eq!(b.wait(t), None);
        b.failed(t);
        assert_eq!(b.wait(t), Some(Duration::from_millis(100)));
        b.failed(t);
        assert_eq!(b.wait(t), Some(Duration::from_millis(200)));
        for _ in 0..10 {
            b.failed(t);
        }
        assert_eq!(b.wait(t), Some(Duration::from_secs(5)));
        assert_eq!(b.wait(t + Duration::from_secs(5)), None);
        b.succeeded();
        assert_eq!(b.wait(t), None);
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
    fn a_table_of_another_shape_is_foreign_and_ours_are_not() {
        let ours: Vec<(String, String, String)> = TABLES
            .iter()
            .flat_map(|(t, cols)| {
                cols.iter()
                    .map(move |(c, ty)| (t.to_string(), c.to_string(), ty.to_string()))
            })
            .collect();
        assert_eq!(foreign_table(&ours), None);
        assert_eq!(foreign_table(&[]), None);
        let foreign = vec![
            ("bets".to_string(), "id".to_string(), "integer".to_string()),
            (
                "bets".to_string(),
                "payload".to_string(),
                "text".to_string(),
            ),
        ];
        let (table, found) = foreign_table(&foreign).unwrap();
        assert_eq!(table, "bets");
        assert_eq!(found.len(), 2);
    }
}
