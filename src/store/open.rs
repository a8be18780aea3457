//! Which store the settings name, opened and recovered: the one place that
//! knows the backends by name. A new backend is a module beside
//! [`super::csv`], a variant of [`StoreSettings`] and an arm here.

use std::fmt;
use std::path::PathBuf;

use super::csv::{CsvStore, StorageError, SyncPolicy};
use super::postgres::{PgError, PgStore};
use super::seam::{Recovery, Store};

/// Where the bets are kept, as the central's settings say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSettings {
    /// The course's `bets.csv` and a journal of DONEs on this machine's disk.
    Csv {
        bets_file: PathBuf,
        journal_file: PathBuf,
        sync: SyncPolicy,
    },
    /// A PostgreSQL database (`STORAGE=postgres://...`), the connection
    /// string as given (it may hold a password: never logged as is).
    Postgres { url: String },
}

/// Why the store could not be opened or recovered.
#[derive(Debug)]
pub enum OpenError {
    Csv(StorageError),
    Postgres(PgError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Csv(e) => write!(f, "cannot open the bets file: {e}"),
            OpenError::Postgres(e) => write!(f, "cannot open the bets database: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Opens the store `settings` names for a lottery of `agencies` agencies,
/// and recovers what a previous run left in it.
pub fn open(
    settings: &StoreSettings,
    agencies: u32,
    winning_number: u16,
) -> Result<(Box<dyn Store>, Recovery), OpenError> {
    match settings {
        StoreSettings::Csv {
            bets_file,
            journal_file,
            sync,
        } => {
            let (store, recovery) =
                CsvStore::open(bets_file, journal_file, agencies, winning_number, *sync)
                    .map_err(OpenError::Csv)?;
            Ok((Box::new(store), recovery))
        }
        StoreSettings::Postgres { url } => {
            let (store, recovery) =
                PgStore::open(url, agencies, winning_number).map_err(OpenError::Postgres)?;
            Ok((Box::new(store), recovery))
        }
    }
}
