//! How a PostgreSQL group commit is split across two sessions, and the
//! sessions that run the two halves at once.
//!
//! One binary `COPY` is parsed, indexed and logged by one backend of the
//! engine, one core; two at once load more (`bench/run.sh pg` compares one
//! bare `COPY` with two at once).
//! So a group is two *shares*, each one transaction (its rows' `COPY`, the
//! check that its rows follow what the database holds, its closes,
//! `COMMIT`) on a connection of its own, both in flight together, and the
//! group is durable when both have committed.
//!
//! The split keeps the store's contract (`super::seam`). An agency's bets of
//! a group and its close all go to one share: a share that commits and one
//! that fails then leave every agency's bets a prefix of its positions, and
//! no close without the bets it counts. Such a group is reported failed,
//! exactly as a commit that broke around `COMMIT` (the engine may have kept
//! it): the store re-reads what the database holds, and the agencies'
//! retries store only what is missing.
//!
//! Each share checks, before it commits, that the bet before its first row
//! of each agency (and the last bet a close counts) is in the database: a
//! database set back behind the central's back (rows deleted, a restore, a
//! lagging standby promoted) would otherwise take rows past a hole, and
//! every ACK after it would promise bets that are not there. A share that
//! finds a hole rolls back and says so ([`CommitFailure::Hole`]).
//!
//! A share with closes is serialized with every other central's closes (it
//! locks the lottery's row), and records the draw when its closes complete
//! the set, announcing it on [`super::pg_schema::DRAWN_CHANNEL`].
//!
//! The sessions are tokio-postgres clients driven by the runtime of the
//! store's thread (`super::pg_worker`), never by the central's loop.

use bytes::Bytes;
use futures_util::SinkExt;
use log::debug;
use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use super::pg_schema::{LOCK_LOTTERY, NOTIFY_DRAWN, RECORD_DRAW};

/// Transactions a group is split into: more did no better on the bench
/// (`bench/run.sh pg`).
pub const SESSIONS: usize = 2;

pub const COPY_BETS: &str = "COPY lottery.bets (lottery, agency, position, seq, first_name, last_name, document, birthdate, number) FROM STDIN (FORMAT binary)";

pub const INSERT_CLOSES: &str = "INSERT INTO lottery.closed_agencies (lottery, agency, total) \
     SELECT $1, a, t FROM unnest($2::integer[], $3::bigint[]) AS c(a, t) ON CONFLICT DO NOTHING";

/// The bets a share's check finds missing: `(agency, position)` pairs.
const CHECK_FOLLOWS: &str = "SELECT c.a, c.p FROM unnest($2::integer[], $3::bigint[]) AS c(a, p) \
     WHERE NOT EXISTS (SELECT 1 FROM lottery.bets b WHERE b.lottery = $1 AND b.agency = c.a AND b.position = c.p) LIMIT 1";

/// The binary `COPY` header: signature, flags, header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The binary `COPY` trailer: a tuple of -1 fields.
const COPY_TRAILER: &[u8] = &[0xff, 0xff];

/// An agency not yet given a share in this group.
const UNASSIGNED: u8 = u8::MAX;

/// One transaction's part of a group.
#[derive(Debug, Default)]
pub struct Share {
    /// The rows, as a binary `COPY` (header included once a row is in).
    copy: Vec<u8>,
    rows: u64,
    /// Agencies and totals of the closes.
    closes: (Vec<i32>, Vec<i64>),
    /// Agencies and positions of bets that must be in the database before
    /// this share commits: the one before each agency's first row of the
    /// group, and the last one each close counts.
    follows: (Vec<i32>, Vec<i64>),
}

impl Share {
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn closes(&self) -> &[i32] {
        &self.closes.0
    }

    /// The totals of [`Share::closes`], in the same order.
    pub fn totals(&self) -> &[i64] {
        &self.closes.1
    }

    fn is_empty(&self) -> bool {
        self.rows == 0 && self.closes.0.is_empty()
    }

    fn must_hold(&mut self, agency: u32, position: u32) {
        self.follows.0.push(agency as i32);
        self.follows.1.push(i64::from(position));
    }
}

/// A group's rows and closes, split into [`SESSIONS`] shares by agency.
#[derive(Debug)]
pub struct Split {
    shares: [Share; SESSIONS],
    /// Per agency (index 0 is agency 1): its share in this group.
    share_of: Vec<u8>,
    /// The agencies given a share, to forget at [`Split::clear`].
    assigned: Vec<u32>,
    /// Per agency: a row of it is in this group.
    has_rows: Vec<bool>,
}

impl Split {
    pub fn new(agencies: u32) -> Split {
        Split {
            shares: Default::default(),
            share_of: vec![UNASSIGNED; agencies as usize],
            assigned: Vec::new(),
            has_rows: vec![false; agencies as usize],
        }
    }

    /// The share of `agency` in this group: the one it already has, or
    /// the one with fewer rows, so the two backends get about as much work.
    fn share_for(&mut self, agency: u32) -> &mut Share {
        let slot = &mut self.share_of[agency as usize - 1];
        if *slot == UNASSIGNED {
            let lighter = (0..SESSIONS)
                .min_by_key(|&i| self.shares[i].rows)
                .expect("at least one share");
            *slot = lighter as u8;
            self.assigned.push(agency);
        }
        &mut self.shares[*slot as usize]
    }

    /// Appends the row of `agency`'s bet at `position`, written by `write`
    /// as one tuple of the binary `COPY`.
    pub fn push_row(&mut self, agency: u32, position: u32, write: impl FnOnce(&mut Vec<u8>)) {
        let first_of_agency = !std::mem::replace(&mut self.has_rows[agency as usize - 1], true);
        let share = self.share_for(agency);
        if first_of_agency && position > 0 {
            share.must_hold(agency, position - 1);
        }
        if share.copy.is_empty() {
            share.copy.extend_from_slice(COPY_HEADER);
        }
        write(&mut share.copy);
        share.rows += 1;
    }

    /// Stages the close of `agency` beside its bets of this group, if any.
    pub fn push_close(&mut self, agency: u32, total: u32) {
        let share = self.share_for(agency);
        share.closes.0.push(agency as i32);
        share.closes.1.push(i64::from(total));
        if total > 0 {
            share.must_hold(agency, total - 1);
        }
    }

    pub fn has_closes(&self) -> bool {
        self.shares.iter().any(|s| !s.closes.0.is_empty())
    }

    pub fn shares(&self) -> &[Share; SESSIONS] {
        &self.shares
    }

    pub fn clear(&mut self) {
        for share in &mut self.shares {
            share.copy.clear();
            share.rows = 0;
            share.closes.0.clear();
            share.closes.1.clear();
            share.follows.0.clear();
            share.follows.1.clear();
        }
        for agency in self.assigned.drain(..) {
            self.share_of[agency as usize - 1] = UNASSIGNED;
            self.has_rows[agency as usize - 1] = false;
        }
    }
}

/// Why a group's commit failed.
#[derive(Debug)]
pub enum CommitFailure {
    /// The engine or the connection said no (the group may still have been
    /// kept in part: see the module's notes).
    Postgres(tokio_postgres::Error),
    /// A bet the group follows is not in the database: it was set back
    /// behind the central's back. Nothing of that share was committed.
    Hole { agency: i32, position: i64 },
}

impl From<tokio_postgres::Error> for CommitFailure {
    fn from(e: tokio_postgres::Error) -> CommitFailure {
        CommitFailure::Postgres(e)
    }
}

/// The [`SESSIONS`] connections a group's shares are committed on.
pub struct Sessions {
    clients: Vec<Client>,
    /// Each session's backend process id, to find what its commit waits
    /// for in `pg_stat_activity`.
    pids: Vec<i32>,
}

impl Sessions {
    /// Opens the connections (each to the read-write server, where the
    /// settings say `target_session_attrs=read-write`), their drivers
    /// spawned on the current tokio runtime.
    pub async fn connect(config: &Config) -> Result<Sessions, tokio_postgres::Error> {
        let mut clients = Vec::with_capacity(SESSIONS);
        let mut pids = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            let client = connect(config).await?;
            let pid: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .await?
                .get(0);
            clients.push(client);
            pids.push(pid);
        }
        Ok(Sessions { clients, pids })
    }

    pub fn pids(&self) -> &[i32] {
        &self.pids
    }

    /// Commits every share of `split`, each in its own transaction, all at
    /// once; `Ok` once every one of them has committed, `Ok(true)` if one
    /// of them recorded the draw. On `Err` some shares may have committed
    /// (see the module's notes).
    pub async fn commit(
        &mut self,
        split: &mut Split,
        copy_bets: &str,
        insert_closes: &str,
        lottery: i32,
    ) -> Result<bool, CommitFailure> {
        let commits = self
            .clients
            .iter_mut()
            .zip(split.shares.iter_mut())
            .map(|(client, share)| commit_share(client, share, copy_bets, insert_closes, lottery));
        let results = futures_util::future::join_all(commits).await;
        let mut drew = false;
        for result in results {
            drew |= result?;
        }
        Ok(drew)
    }
}

/// What a listening connection's driver reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// A notification on a channel it listens to.
    Notified,
    /// The connection ended.
    Lost,
}

/// One client, its connection driven by a task of the current runtime that
/// logs the server's notices at DEBUG and ends with the connection.
pub async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    connect_listening(config, None).await
}

/// [`connect`], with the connection's notifications, and its end, told to
/// `heard`.
pub async fn connect_listening(
    config: &Config,
    heard: Option<UnboundedSender<Heard>>,
) -> Result<Client, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        while let Some(Ok(message)) =
            futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await
        {
            match message {
                AsyncMessage::Notice(notice) => {
                    debug!("PostgreSQL notice: {}", notice.message());
                }
                AsyncMessage::Notification(_) => {
                    if let Some(heard) = &heard {
                        let _ = heard.send(Heard::Notified);
                    }
                }
                _ => {}
            }
        }
        if let Some(heard) = &heard {
            let _ = heard.send(Heard::Lost);
        }
    });
    Ok(client)
}

/// One share's transaction: its `COPY`, the check that its rows follow
/// what the database holds, its closes and the draw they may complete,
/// `COMMIT`. `Ok(true)`: it recorded the draw.
async fn commit_share(
    client: &mut Client,
    share: &mut Share,
    copy_bets: &str,
    insert_closes: &str,
    lottery: i32,
) -> Result<bool, CommitFailure> {
    if share.is_empty() {
        return Ok(false);
    }
    let tx = client.transaction().await?;
    if share.rows > 0 {
        share.copy.extend_from_slice(COPY_TRAILER);
        let sink = tx.copy_in::<_, Bytes>(copy_bets).await?;
        futures_util::pin_mut!(sink);
        sink.send(Bytes::copy_from_slice(&share.copy)).await?;
        sink.finish().await?;
    }
    if !share.follows.0.is_empty() {
        let missing = tx
            .query_opt(
                CHECK_FOLLOWS,
                &[&lottery, &share.follows.0, &share.follows.1],
            )
            .await?;
        if let Some(row) = missing {
            // Dropped, the transaction rolls back.
            return Err(CommitFailure::Hole {
                agency: row.get(0),
                position: row.get(1),
            });
        }
    }
    let mut drew = false;
    if !share.closes.0.is_empty() {
        tx.execute(LOCK_LOTTERY, &[&lottery]).await?;
        tx.execute(insert_closes, &[&lottery, &share.closes.0, &share.closes.1])
            .await?;
        drew = tx.execute(RECORD_DRAW, &[&lottery]).await? > 0;
        if drew {
            tx.execute(NOTIFY_DRAWN, &[]).await?;
        }
    }
    tx.commit().await?;
    Ok(drew)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(out: &mut Vec<u8>) {
        out.push(b'r');
    }

    fn share_holding(split: &Split, agency: i32) -> Vec<usize> {
        (0..SESSIONS)
            .filter(|&i| split.shares()[i].closes().contains(&agency))
            .collect()
    }

    #[test]
    fn an_agencys_bets_and_its_close_go_to_one_share() {
        let mut split = Split::new(3);
        split.push_row(1, 1, row);
        split.push_row(2, 1, row);
        split.push_row(1, 1, row);
        split.push_row(1, 1, row);
        split.push_close(1, 3);
        split.push_row(2, 1, row);
        split.push_close(2, 2);
        let rows: Vec<u64> = split.shares().iter().map(Share::rows).collect();
        // Agency 1 took the first share (both empty), agency 2 the other.
        assert_eq!(rows, vec![3, 2]);
        assert_eq!(share_holding(&split, 1), vec![0]);
        assert_eq!(share_holding(&split, 2), vec![1]);
    }

    #[test]
    fn a_new_agency_goes_to_the_share_with_fewer_rows() {
        let mut split = Split::new(4);
        for _ in 0..5 {
            split.push_row(1, 1, row);
        }
        split.push_row(2, 1, row);
        split.push_row(3, 1, row);
        split.push_row(4, 1, row);
        let rows: Vec<u64> = split.shares().iter().map(Share::rows).collect();
        assert_eq!(rows, vec![5, 3]);
    }

    #[test]
    fn each_share_with_rows_is_one_copy_with_one_header() {
        let mut split = Split::new(2);
        split.push_row(1, 1, row);
        split.push_row(1, 1, row);
        split.push_row(2, 1, row);
        for share in split.shares() {
            assert!(share.copy.starts_with(COPY_HEADER));
            assert_eq!(share.copy.len(), COPY_HEADER.len() + share.rows as usize);
        }
    }

    #[test]
    fn a_cleared_split_forgets_the_agencies_shares() {
        let mut split = Split::new(2);
        split.push_row(1, 1, row);
        split.push_row(1, 1, row);
        split.clear();
        assert!(split.shares().iter().all(Share::is_empty));
        assert!(!split.has_closes());
        // Agency 2 first now: it takes share 0, agency 1 the other.
        split.push_row(2, 1, row);
        split.push_close(1, 2);
        assert_eq!(share_holding(&split, 1), vec![1]);
    }

    #[test]
    fn a_share_checks_the_bet_before_each_agencys_first_row_and_the_last_a_close_counts() {
        let mut split = Split::new(3);
        split.push_row(1, 0, row);
        split.push_row(1, 1, row);
        split.push_row(2, 7, row);
        split.push_row(2, 8, row);
        split.push_close(2, 9);
        split.push_close(3, 0);
        let follows: Vec<(i32, i64)> = split
            .shares()
            .iter()
            .flat_map(|s| s.follows.0.iter().copied().zip(s.follows.1.iter().copied()))
            .collect();
        // Agency 1 starts at 0 (nothing before it), agency 3 closes empty.
        assert_eq!(follows, vec![(2, 6), (2, 8)]);
        split.clear();
        split.push_row(2, 9, row);
        let follows: Vec<i64> = split
            .shares()
            .iter()
            .flat_map(|s| s.follows.1.clone())
            .collect();
        assert_eq!(follows, vec![8], "a cleared split checks anew");
    }

    #[test]
    fn a_close_alone_in_its_group_is_staged() {
        let mut split = Split::new(1);
        split.push_close(1, 0);
        assert!(split.has_closes());
        assert_eq!(split.shares().iter().map(Share::rows).sum::<u64>(), 0);
    }
}
