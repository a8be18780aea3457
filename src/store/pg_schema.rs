//! The PostgreSQL store's tables and the reads it makes of them: the schema
//! made (once, however many centrals start at the same moment) and checked,
//! the lottery's row, what the database holds per agency, and the winners.
//!
//! Everything here runs on the store's thread (`super::pg_worker`), at the
//! open and after every failure, never on the central's loop. A read that
//! finds the bets of an agency with a hole in their positions, or a close
//! counting other bets than are stored, is an error ([`PgError::Corrupt`]):
//! nothing is ever staged against counts that cannot be trusted.

use std::fmt;

use tokio_postgres::Client;

use super::seam::{RecoveredAgency, Recovery};

/// The one lottery of a database (one lottery per deployment).
pub const LOTTERY: i32 = 1;

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
pub fn describe(e: &tokio_postgres::Error) -> String {
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

/// The tables this store makes, as `information_schema.columns` lists them.
pub const TABLES: &[(&str, &[(&str, &str)])] = &[
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
    (
        "draw",
        &[
            ("lottery", "integer"),
            ("drawn_at", "timestamp with time zone"),
        ],
    ),
];

/// Made under a transaction-scoped advisory lock: `CREATE ... IF NOT
/// EXISTS` run by two sessions at once can still both try to create, and
/// one then fails on the catalog's unique index.
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
CREATE TABLE IF NOT EXISTS lottery.draw (
    lottery integer PRIMARY KEY,
    drawn_at timestamptz NOT NULL
);
";

/// The channel a draw is announced on, in the transaction that records it.
pub const DRAWN_CHANNEL: &str = "lottery_drawn";

/// Records the draw if every agency is closed and it is not recorded yet;
/// one row when it did. Run after `LOCK_LOTTERY` in the transaction of the
/// closes, so that two centrals committing the last two closes at once are
/// serialized: the second sees the first's close and draws, neither both
/// nor none.
pub const RECORD_DRAW: &str = "INSERT INTO lottery.draw (lottery, drawn_at) \
     SELECT l.id, now() FROM lottery.lottery l WHERE l.id = $1 \
     AND (SELECT count(*) FROM lottery.closed_agencies c WHERE c.lottery = $1) = l.agencies \
     ON CONFLICT DO NOTHING RETURNING 1";

/// Taken by every transaction that inserts closes, before it counts them.
pub const LOCK_LOTTERY: &str = "SELECT 1 FROM lottery.lottery WHERE id = $1 FOR UPDATE";

/// Announces the draw to every central listening (sent at the commit).
pub const NOTIFY_DRAWN: &str = "SELECT pg_notify('lottery_drawn', '')";

/// The advisory lock key the schema is made under ("lottery" in ASCII).
const SCHEMA_LOCK: i64 = 0x006c_6f74_7465_7279;

/// What the database holds of the lottery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Bets per agency (index 0 is agency 1).
    pub stored: Vec<u32>,
    /// Per agency: its close is recorded.
    pub closed: Vec<bool>,
    /// The `seq` of the next bet.
    pub next_seq: i64,
}

/// Makes the tables if missing (checked first to be this store's), checks
/// the lottery recorded is this central's, and recovers what they hold.
pub async fn open(
    client: &mut Client,
    location: &str,
    agencies: u32,
    winning_number: u16,
) -> Result<(Held, Recovery), PgError> {
    let query = |e: tokio_postgres::Error| PgError::Query {
        location: location.into(),
        why: describe(&e),
    };
    check_tables(client, location).await?;
    let tx = client.transaction().await.map_err(query)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(query)?;
    tx.batch_execute(CREATE).await.map_err(query)?;
    // Kept small: only the winning bets are in it, so the draw reads its
    // winners without a scan and the ingest barely pays for it.
    tx.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS bets_winning_{winning_number} ON lottery.bets \
         (lottery, agency, position) INCLUDE (document) WHERE number = {winning_number}"
    ))
    .await
    .map_err(query)?;
    tx.commit().await.map_err(query)?;
    check_lottery(client, location, agencies, winning_number).await?;
    // A lottery whose agencies all closed before the draw was recorded in
    // a table of its own has it recorded now.
    client
        .execute(RECORD_DRAW, &[&LOTTERY])
        .await
        .map_err(query)?;
    let held = read_held(client, location, agencies).await?;
    let winners = read_winners(client, agencies, winning_number)
        .await
        .map_err(query)?;
    let recovery = Recovery {
        agencies: recovered(&held, winners),
    };
    Ok((held, recovery))
}

/// Refuses tables of the schema `lottery` that are not of the shape this
/// store makes (so another program's `bets` is never written into).
pub async fn check_tables(client: &Client, location: &str) -> Result<(), PgError> {
    let rows = client
        .query(COLUMNS, &[])
        .await
        .map_err(|e| PgError::Query {
            location: location.into(),
            why: describe(&e),
        })?;
    check_columns(&rows, location)
}

/// The columns of the schema `lottery`'s tables, for [`check_columns`].
pub const COLUMNS: &str = "SELECT table_name::text, column_name::text, data_type::text \
     FROM information_schema.columns WHERE table_schema = 'lottery' ORDER BY table_name, ordinal_position";

/// Refuses the tables whose columns ([`COLUMNS`]'s rows) are not this
/// store's.
pub fn check_columns(rows: &[tokio_postgres::Row], location: &str) -> Result<(), PgError> {
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
async fn check_lottery(
    client: &Client,
    location: &str,
    agencies: u32,
    winning_number: u16,
) -> Result<(), PgError> {
    let query = |e: tokio_postgres::Error| PgError::Query {
        location: location.into(),
        why: describe(&e),
    };
    client
        .execute(
            "INSERT INTO lottery.lottery (id, agencies, winning_number) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
            &[&LOTTERY, &(agencies as i32), &(winning_number as i16)],
        )
        .await
        .map_err(query)?;
    let rows = client
        .query(
            "SELECT id, agencies, winning_number FROM lottery.lottery ORDER BY id",
            &[],
        )
        .await
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

/// What the database holds per agency: its bets, checked gap-free, its
/// close, checked against them, and the next `seq`.
pub async fn read_held(client: &Client, location: &str, agencies: u32) -> Result<Held, PgError> {
    let query = |e: tokio_postgres::Error| PgError::Query {
        location: location.into(),
        why: describe(&e),
    };
    let mut counts = Vec::new();
    for row in client
        .query(
            "SELECT agency, count(*), max(position), max(seq) FROM lottery.bets WHERE lottery = $1 GROUP BY agency",
            &[&LOTTERY],
        )
        .await
        .map_err(query)?
    {
        counts.push((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    let mut closes = Vec::new();
    for row in client
        .query(
            "SELECT agency, total FROM lottery.closed_agencies WHERE lottery = $1",
            &[&LOTTERY],
        )
        .await
        .map_err(query)?
    {
        closes.push((row.get(0), row.get(1)));
    }
    held_of(&counts, &closes, agencies).map_err(|why| match why {
        Inconsistent::Corrupt(why) => PgError::Corrupt {
            location: location.into(),
            why,
        },
        Inconsistent::Foreign(why) => PgError::OtherLottery {
            location: location.into(),
            why,
        },
    })
}

/// Why what a database holds cannot be taken as this lottery's.
#[derive(Debug, PartialEq, Eq)]
pub enum Inconsistent {
    /// Rows that disagree with each other (a hole, a close of another count).
    Corrupt(String),
    /// Rows of agencies this central does not expect.
    Foreign(String),
}

/// What the database holds, from its per-agency `(agency, count,
/// max(position), max(seq))` and its closes `(agency, total)`. Pure.
pub fn held_of(
    counts: &[(i32, i64, i64, i64)],
    closes: &[(i32, i64)],
    agencies: u32,
) -> Result<Held, Inconsistent> {
    let mut held = Held {
        stored: vec![0; agencies as usize],
        closed: vec![false; agencies as usize],
        next_seq: 0,
    };
    for &(agency, count, max_position, max_seq) in counts {
        if agency < 1 || agency as u32 > agencies {
            return Err(Inconsistent::Foreign(format!(
                "it holds bets of agency {agency}, but this central expects AGENCIES={agencies}"
            )));
        }
        if count != max_position + 1 {
            return Err(Inconsistent::Corrupt(format!(
                "agency {agency} has {count} bets but positions up to {max_position}"
            )));
        }
        held.stored[agency as usize - 1] = count as u32;
        held.next_seq = held.next_seq.max(max_seq + 1);
    }
    for &(agency, total) in closes {
        if agency < 1 || agency as u32 > agencies {
            return Err(Inconsistent::Foreign(format!(
                "it closed agency {agency}, but this central expects AGENCIES={agencies}"
            )));
        }
        let stored = held.stored[agency as usize - 1];
        if total != i64::from(stored) {
            return Err(Inconsistent::Corrupt(format!(
                "agency {agency} closed with {total} bets but {stored} are stored"
            )));
        }
        held.closed[agency as usize - 1] = true;
    }
    Ok(held)
}

/// The winning bets' documents per agency (index 0 is agency 1), in stored
/// order: one query, served by the partial index of the winning bets.
pub async fn read_winners(
    client: &Client,
    agencies: u32,
    winning_number: u16,
) -> Result<Vec<Vec<Box<str>>>, tokio_postgres::Error> {
    let mut winners = vec![Vec::new(); agencies as usize];
    for row in client
        .query(
            "SELECT agency, document FROM lottery.bets WHERE lottery = $1 AND number = $2 ORDER BY agency, position",
            &[&LOTTERY, &(winning_number as i16)],
        )
        .await?
    {
        let (agency, document): (i32, &str) = (row.get(0), row.get(1));
        if let Some(w) = winners.get_mut((agency as usize).wrapping_sub(1)) {
            w.push(document.into());
        }
    }
    Ok(winners)
}

/// What the database holds of `agencies` now: `(agency, stored, closed)`
/// each, the stored count from the agency's last position (one probe of
/// the primary key's index per agency, however many bets it has), and the
/// `seq` of that last bet.
pub async fn read_counts(
    client: &Client,
    agencies: &[u32],
) -> Result<Vec<(u32, u32, bool, i64)>, tokio_postgres::Error> {
    let agencies: Vec<i32> = agencies.iter().map(|&a| a as i32).collect();
    let rows = client
        .query(
            "SELECT a.agency, coalesce(b.position + 1, 0), c.total IS NOT NULL, coalesce(b.seq, -1) \
             FROM unnest($2::integer[]) AS a(agency) \
             LEFT JOIN LATERAL (SELECT position, seq FROM lottery.bets WHERE lottery = $1 AND agency = a.agency \
                                ORDER BY position DESC LIMIT 1) b ON true \
             LEFT JOIN lottery.closed_agencies c ON c.lottery = $1 AND c.agency = a.agency",
            &[&LOTTERY, &agencies],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (agency, stored, closed, seq): (i32, i64, bool, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            (agency as u32, stored as u32, closed, seq)
        })
        .collect())
}

/// Whether the draw is recorded.
pub async fn is_drawn(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt("SELECT 1 FROM lottery.draw WHERE lottery = $1", &[&LOTTERY])
        .await?;
    Ok(row.is_some())
}

/// The draw as the database holds it, if it is recorded: every agency's
/// count, close and winners.
pub async fn read_draw(
    client: &Client,
    location: &str,
    agencies: u32,
    winning_number: u16,
) -> Result<Option<Vec<RecoveredAgency>>, PgError> {
    let query = |e: tokio_postgres::Error| PgError::Query {
        location: location.into(),
        why: describe(&e),
    };
    if !is_drawn(client).await.map_err(query)? {
        return Ok(None);
    }
    let held = read_held(client, location, agencies).await?;
    let winners = read_winners(client, agencies, winning_number)
        .await
        .map_err(query)?;
    Ok(Some(recovered(&held, winners)))
}

/// Per agency, what is held and its winners.
pub fn recovered(held: &Held, winners: Vec<Vec<Box<str>>>) -> Vec<RecoveredAgency> {
    held.stored
        .iter()
        .zip(&held.closed)
        .zip(winners)
        .map(|((&stored, &closed), winners)| RecoveredAgency {
            stored,
            closed,
            winners,
        })
        .collect()
}

/// What the sessions' commits wait for, as `pg_stat_activity` says:
/// `(wait_event_type, wait_event)` of each waiting one.
pub async fn waits_of(
    client: &Client,
    pids: &[i32],
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT coalesce(wait_event_type, ''), coalesce(wait_event, '') FROM pg_stat_activity \
             WHERE pid = ANY($1) AND wait_event IS NOT NULL",
            &[&pids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The synchronous standbys a commit waits for, and how many are streaming.
pub async fn sync_standbys(client: &Client) -> Result<(String, i64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_setting('synchronous_standby_names'), \
             (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn what_is_held_counts_each_agencys_bets_and_closes() {
        let held = held_of(&[(1, 3, 2, 10), (3, 1, 0, 4)], &[(3, 1)], 3).unwrap();
        assert_eq!(held.stored, vec![3, 0, 1]);
        assert_eq!(held.closed, vec![false, false, true]);
        assert_eq!(held.next_seq, 11);
    }

    #[test]
    fn a_hole_in_an_agencys_positions_is_an_error_never_a_count() {
        let e = held_of(&[(1, 3, 2, 2), (2, 2, 4, 9)], &[], 2).unwrap_err();
        assert_eq!(
            e,
            Inconsistent::Corrupt("agency 2 has 2 bets but positions up to 4".into())
        );
    }

    #[test]
    fn a_close_counting_other_bets_than_are_stored_is_an_error() {
        let e = held_of(&[(1, 3, 2, 2)], &[(1, 5)], 1).unwrap_err();
        assert!(matches!(e, Inconsistent::Corrupt(_)), "{e:?}");
    }

    #[test]
    fn bets_or_closes_of_an_agency_not_expected_are_another_lotterys() {
        assert!(matches!(
            held_of(&[(4, 1, 0, 0)], &[], 3),
            Err(Inconsistent::Foreign(_))
        ));
        assert!(matches!(
            held_of(&[], &[(0, 0)], 3),
            Err(Inconsistent::Foreign(_))
        ));
    }
}
