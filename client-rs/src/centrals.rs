//! Which of the central's addresses (`server.address`, `host:port[,...]`)
//! the agency talks to, and when it moves to the next one. Pure logic: the
//! agency reports each failed attempt and logs the move this returns.
//!
//! The addresses are meant to be centrals over one shared store (the same
//! lottery), so any of them can take the stream from wherever it is: after a
//! move the agency resends from its acknowledged count and the new central's
//! answer (ACK, OUT_OF_ORDER, MISSING_BETS) says what it really holds.
//!
//! The agency moves on, round-robin, after:
//! - a connection that could not be opened ([`Cause::Unreachable`]);
//! - a connection lost: closed, reset, or silent past the reply deadline
//!   ([`Cause::Lost`]);
//! - `ERROR SHUTTING_DOWN` ([`Cause::ShuttingDown`]);
//! - `ERROR STORAGE` given `server.storageErrors` times in a row by the same
//!   central, with no useful answer in between ([`Cause::Storage`]); fewer
//!   are retried on that central, since a store that failed once may well
//!   take the next write.
//!
//! With one address there is nowhere to move: every retry goes to it, as
//! an agency with one central always did.

/// Why an attempt on the current central failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The connection could not be opened.
    Unreachable,
    /// The connection was closed, reset, or the reply deadline passed.
    Lost,
    /// The central answered `ERROR SHUTTING_DOWN`.
    ShuttingDown,
    /// The central answered `ERROR STORAGE`.
    Storage,
}

/// A move from one address to another, for the `cambiar_central` line.
#[derive(Debug, PartialEq, Eq)]
pub struct Move {
    pub from: String,
    pub to: String,
}

#[derive(Debug)]
pub struct Centrals {
    addresses: Vec<String>,
    current: usize,
    /// `ERROR STORAGE` answers in a row from the current central.
    storage_in_a_row: u32,
    /// `server.storageErrors`: how many of them make the agency move.
    storage_limit: u32,
}

impl Centrals {
    /// `addresses` must hold at least one; the first is tried first.
    pub fn new(addresses: Vec<String>, storage_limit: u32) -> Centrals {
        assert!(!addresses.is_empty(), "the agency has a central to talk to");
        Centrals {
            addresses,
            current: 0,
            storage_in_a_row: 0,
            storage_limit: storage_limit.max(1),
        }
    }

    /// The address the next attempt goes to.
    pub fn current(&self) -> &str {
        &self.addresses[self.current]
    }

    /// Every address, as `server.address` lists them.
    pub fn all(&self) -> String {
        self.addresses.join(",")
    }

    /// An attempt on the current central failed because of `cause`;
    /// `answered_since` says whether it answered usefully since the last
    /// failure (which ends a run of `ERROR STORAGE`). Returns the move to
    /// the next address, if the agency moves.
    pub fn failed(&mut self, cause: Cause, answered_since: bool) -> Option<Move> {
        if answered_since {
            self.storage_in_a_row = 0;
        }
        if cause == Cause::Storage {
            self.storage_in_a_row += 1;
            if self.storage_in_a_row < self.storage_limit {
                return None;
            }
        }
        if self.addresses.len() == 1 {
            return None;
        }
        let from = self.current().to_string();
        self.current = (self.current + 1) % self.addresses.len();
        self.storage_in_a_row = 0;
        Some(Move {
            from,
            to: self.current().to_string(),
        })
    }

    /// How many `ERROR STORAGE` in a row make the agency move.
    pub fn storage_limit(&self) -> u32 {
        self.storage_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn centrals(n: usize, storage_limit: u32) -> Centrals {
        Centrals::new(
            (1..=n).map(|i| format!("central-{i}:12345")).collect(),
            storage_limit,
        )
    }

    fn to(m: Option<Move>) -> Option<String> {
        m.map(|m| m.to)
    }

    #[test]
    fn a_failed_connect_a_loss_or_a_shutdown_moves_round_robin() {
        let mut c = centrals(3, 3);
        assert_eq!(c.current(), "central-1:12345");
        let first = c.failed(Cause::Unreachable, false).unwrap();
        assert_eq!(
            first,
            Move {
                from: "central-1:12345".into(),
                to: "central-2:12345".into()
            }
        );
        assert_eq!(
            to(c.failed(Cause::Lost, true)),
            Some("central-3:12345".into())
        );
        assert_eq!(
            to(c.failed(Cause::ShuttingDown, false)),
            Some("central-1:12345".into())
        );
        assert_eq!(c.current(), "central-1:12345");
        assert_eq!(c.all(), "central-1:12345,central-2:12345,central-3:12345");
    }

    #[test]
    fn storage_errors_move_only_once_they_reach_the_limit_in_a_row() {
        let mut c = centrals(2, 3);
        assert_eq!(c.failed(Cause::Storage, true), None);
        assert_eq!(c.failed(Cause::Storage, false), None);
        assert_eq!(
            to(c.failed(Cause::Storage, false)),
            Some("central-2:12345".into())
        );
        // A useful answer in between starts the count again.
        assert_eq!(c.failed(Cause::Storage, true), None);
        assert_eq!(c.failed(Cause::Storage, false), None);
        assert_eq!(c.failed(Cause::Storage, true), None);
        assert_eq!(c.failed(Cause::Storage, false), None);
        assert_eq!(
            to(c.failed(Cause::Storage, false)),
            Some("central-1:12345".into())
        );
    }

    #[test]
    fn a_move_starts_the_storage_count_of_the_next_central_from_zero() {
        let mut c = centrals(2, 2);
        assert_eq!(c.failed(Cause::Storage, false), None);
        assert!(c.failed(Cause::Lost, false).is_some());
        assert_eq!(c.failed(Cause::Storage, false), None);
        assert!(c.failed(Cause::Storage, false).is_some());
    }

    #[test]
    fn with_one_address_the_agency_never_moves() {
        let mut c = centrals(1, 1);
        for cause in [
            Cause::Unreachable,
            Cause::Lost,
            Cause::ShuttingDown,
            Cause::Storage,
        ] {
            assert_eq!(c.failed(cause, false), None);
        }
        assert_eq!(c.current(), "central-1:12345");
    }
}
