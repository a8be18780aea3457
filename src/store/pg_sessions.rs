//! How a PostgreSQL group commit is split across two sessions, and the
//! sessions that run the two halves at once.
//!
//! One binary `COPY` is parsed, indexed and logged by one backend of the
//! engine, one core: on the bench's primary/standby pair one COPY loaded
//! 335-454 k rows a second and two at once 481-603 k (bench/pg.sh). So a
//! group is two *shares*, each one transaction (its rows' `COPY`, its
//! closes, `COMMIT`) on a connection of its own, both in flight together,
//! and the group is durable when both have committed.
//!
//! The split keeps the store's contract (`super::seam`). An agency's bets of
//! a group and its close all go to one share: a share that commits and one
//! that fails then leave every agency's bets a prefix of its positions, and
//! no close without the bets it counts. Such a group is reported failed,
//! exactly as a commit that broke around `COMMIT` (the engine may have kept
//! it): the store re-reads what the database holds, and the agencies'
//! retries store only what is missing.
//!
//! The sessions are tokio-postgres clients on a current-thread runtime of
//! their own that runs only inside [`Sessions::commit`]: the central's loop
//! stays one thread, blocked during a commit as it is during `fdatasync`.

use std::io;

use bytes::Bytes;
use futures_util::SinkExt;
use log::debug;
use tokio::runtime::{Builder, Runtime};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

/// Transactions a group is split into. Two: on the bench's two cores
/// (which also run the standby's replay, the central and its agencies)
/// three and four sessions did no better, within the runs' noise
/// (bench/README.md, PostgreSQL).
pub const SESSIONS: usize = 2;

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
}

impl Share {
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn closes(&self) -> &[i32] {
        &self.closes.0
    }

    fn is_empty(&self) -> bool {
        self.rows == 0 && self.closes.0.is_empty()
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
}

impl Split {
    pub fn new(agencies: u32) -> Split {
        Split {
            shares: Default::default(),
            share_of: vec![UNASSIGNED; agencies as usize],
            assigned: Vec::new(),
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

    /// Appends a row of `agency`, written by `write` as one tuple of the
    /// binary `COPY`.
    pub fn push_row(&mut self, agency: u32, write: impl FnOnce(&mut Vec<u8>)) {
        let share = self.share_for(agency);
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
        }
        for agency in self.assigned.drain(..) {
            self.share_of[agency as usize - 1] = UNASSIGNED;
        }
    }
}

/// Why the sessions could not be opened.
#[derive(Debug)]
pub enum SessionsError {
    Runtime(io::Error),
    Postgres(tokio_postgres::Error),
}

/// The [`SESSIONS`] connections a group's shares are committed on.
pub struct Sessions {
    runtime: Runtime,
    clients: Vec<Client>,
}

impl Sessions {
    /// Opens the connections (each to the read-write server, where the
    /// settings say `target_session_attrs=read-write`).
    pub fn connect(config: &Config) -> Result<Sessions, SessionsError> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SessionsError::Runtime)?;
        let clients = runtime
            .block_on(async {
                let mut clients = Vec::with_capacity(SESSIONS);
                for _ in 0..SESSIONS {
                    let (client, mut connection) = config.connect(NoTls).await?;
                    // Runs whenever the runtime does (inside a commit). An
                    // error ends it; the client's next call reports it.
                    tokio::spawn(async move {
                        while let Some(Ok(message)) =
                            futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await
                        {
                            if let AsyncMessage::Notice(notice) = message {
                                debug!("PostgreSQL notice: {}", notice.message());
                            }
                        }
                    });
                    clients.push(client);
                }
                Ok(clients)
            })
            .map_err(SessionsError::Postgres)?;
        Ok(Sessions { runtime, clients })
    }

    /// Commits every share of `split`, each in its own transaction, all at
    /// once; `Ok` once every one of them has committed. On `Err` some
    /// shares may have committed (see the module's notes).
    pub fn commit(
        &mut self,
        split: &mut Split,
        copy_bets: &str,
        insert_closes: &str,
        lottery: i32,
    ) -> Result<(), tokio_postgres::Error> {
        let commits = self
            .clients
            .iter_mut()
            .zip(split.shares.iter_mut())
            .map(|(client, share)| commit_share(client, share, copy_bets, insert_closes, lottery));
        let results = self
            .runtime
            .block_on(futures_util::future::join_all(commits));
        results.into_iter().collect()
    }
}

/// One share's transaction: its `COPY`, its closes, `COMMIT`.
async fn commit_share(
    client: &mut Client,
    share: &mut Share,
    copy_bets: &str,
    insert_closes: &str,
    lottery: i32,
) -> Result<(), tokio_postgres::Error> {
    if share.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    if share.rows > 0 {
        share.copy.extend_from_slice(COPY_TRAILER);
        let sink = tx.copy_in::<_, Bytes>(copy_bets).await?;
        futures_util::pin_mut!(sink);
        sink.send(Bytes::copy_from_slice(&share.copy)).await?;
        sink.finish().await?;
    }
    if !share.closes.0.is_empty() {
        tx.execute(insert_closes, &[&lottery, &share.closes.0, &share.closes.1])
            .await?;
    }
    tx.commit().await
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
        split.push_row(1, row);
        split.push_row(2, row);
        split.push_row(1, row);
        split.push_row(1, row);
        split.push_close(1, 3);
        split.push_row(2, row);
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
            split.push_row(1, row);
        }
        split.push_row(2, row);
        split.push_row(3, row);
        split.push_row(4, row);
        let rows: Vec<u64> = split.shares().iter().map(Share::rows).collect();
        assert_eq!(rows, vec![5, 3]);
    }

    #[test]
    fn each_share_with_rows_is_one_copy_with_one_header() {
        let mut split = Split::new(2);
        split.push_row(1, row);
        split.push_row(1, row);
        split.push_row(2, row);
        for share in split.shares() {
            assert!(share.copy.starts_with(COPY_HEADER));
            assert_eq!(share.copy.len(), COPY_HEADER.len() + share.rows as usize);
        }
    }

    #[test]
    fn a_cleared_split_forgets_the_agencies_shares() {
        let mut split = Split::new(2);
        split.push_row(1, row);
        split.push_row(1, row);
        split.clear();
        assert!(split.shares().iter().all(Share::is_empty));
        assert!(!split.has_closes());
        // Agency 2 first now: it takes share 0, agency 1 the other.
        split.push_row(2, row);
        split.push_close(1, 2);
        assert_eq!(share_holding(&split, 1), vec![1]);
    }

    #[test]
    fn a_close_alone_in_its_group_is_staged() {
        let mut split = Split::new(1);
        split.push_close(1, 0);
        assert!(split.has_closes());
        assert_eq!(split.shares().iter().map(Share::rows).sum::<u64>(), 0);
    }
}
