//! The central's files: `bets.csv` (every stored bet, in the course's format
//! `agency,first_name,last_name,document,birthdate,number`) and the journal
//! (one `DONE <agency> <total>` line per closed agency).
//!
//! Writes are a group commit: bets and closes are *staged* in memory during a
//! loop iteration (the bets' rows written to the file ahead, unsynced, in
//! chunks of [`WRITE_AHEAD`], so the disk works while the loop decodes),
//! then [`CsvStore::commit`] appends the rest, `fdatasync`s the bets
//! file and then the journal (so a close is never durable before its bets),
//! and only then may the loop send ACKs. If the disk refuses a write the files
//! are cut back to their last committed length: nothing torn, nothing
//! acknowledged that is not on disk.
//!
//! Rows are written by [`push_row`] in one walk of each field, quoted as the
//! `csv` crate's writer with minimal quoting and CRLF (Python's `csv.writer`)
//! quotes them, so Python's `csv` module reads back exactly what was sent;
//! recovery reads the file with the `csv` crate.
//!
//! [`CsvStore::open`] recovers what a previous run left: every agency's stored
//! count and winners, and the closed agencies. A torn last line (a crash in
//! the middle of a write, never acknowledged) is cut off and logged; anything
//! wrong before the last line is corruption, and the central refuses to start.
//!
//! One exception, the tail a power cut leaves: a filesystem may put a later
//! unsynced block on the disk before an earlier one, so past the last synced
//! row the file can read as NUL bytes followed by rows. A valid row never
//! holds a NUL byte (names refuse control characters), and nothing past the
//! last synced row was acknowledged, so from the first row holding one the
//! tail is cut off and logged. Rows the journal vouches for were synced
//! before their DONE: if that cut would take any of them, the NUL bytes lie
//! among synced rows, which is corruption, and the central refuses to start.
//! The journal records no byte length, so for an agency not yet closed a
//! hole among its synced rows cannot be told from a torn tail and is cut;
//! the agency resumes from the stored count the central answers.
//!
//! Both files are created readable and writable by their owner only (they
//! hold people's names and documents); a file an older version made
//! readable by others is restricted at open.

use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use log::{info, warn};

use super::seam::{
    BatchToStage, CommitError, CommitStats, Finished, RecoveredAgency, Recovery, Started, Store,
};
use crate::bets::bet::{self, InvalidBet};
pub use crate::bets::row::{AgencyField, push_frame_row, push_row};
use crate::wire::{BetFields, Date};

/// When the bets file and the journal are flushed to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// `fdatasync` once per loop iteration before any ACK goes out (group commit).
    Always,
    /// Leave it to the kernel: ACKs mean "written", not "on disk". For
    /// throwaway runs only.
    Never,
}

/// Why the files could not be opened or recovered.
#[derive(Debug)]
pub enum StorageError {
    Io {
        path: PathBuf,
        error: io::Error,
    },
    Corrupt {
        path: PathBuf,
        line: u64,
        why: String,
    },
    /// Well-formed files of another lottery: they name an agency beyond
    /// `AGENCIES`. Not corruption; the central still refuses to mix them in.
    OtherLottery {
        bets: PathBuf,
        journal: PathBuf,
        /// The file and line that named `agency`.
        path: PathBuf,
        line: u64,
        agency: u32,
        agencies: u32,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            StorageError::Corrupt { path, line, why } => {
                write!(f, "{} is corrupt at line {line}: {why}", path.display())
            }
            StorageError::OtherLottery {
                bets,
                journal,
                path,
                line,
                agency,
                agencies,
            } => write!(
                f,
                "{bets} and {journal} hold another lottery: line {line} of {path} is a bet of agency \
                 {agency}, but this central expects AGENCIES={agencies}. The files are not corrupt; \
                 they were made for a lottery with more agencies. To start a new lottery, move or \
                 delete both files (or set BETS_FILE to a new path); to go on with that lottery, \
                 start the central with AGENCIES={agency} or more.",
                bets = bets.display(),
                journal = journal.display(),
                path = path.display(),
            ),
        }
    }
}

impl std::error::Error for StorageError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |error| StorageError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Bytes of a torn tail cut off each file at open (a crash in the middle
/// of a write, never acknowledged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cuts {
    pub bets: u64,
    pub journal: u64,
}

pub struct CsvStore {
    bets: File,
    bets_path: PathBuf,
    bets_len: u64,
    journal: File,
    journal_path: PathBuf,
    journal_len: u64,
    /// Staged rows, as they go into the file.
    rows: Vec<u8>,
    /// How many bytes at the front of `rows` are written to the file ahead
    /// of the commit (not synced, not acknowledged; see [`WRITE_AHEAD`]).
    written_ahead: usize,
    /// A write ahead that failed: the commit fails with it.
    ahead_error: Option<io::Error>,
    staged_closes: Vec<u8>,
    staged_bets: u64,
    sync: SyncPolicy,
    cuts: Cuts,
}

impl CsvStore {
    /// Opens (creating if needed) the bets file and the journal, and recovers
    /// their contents for a central expecting `agencies` agencies.
    pub fn open(
        bets_path: &Path,
        journal_path: &Path,
        agencies: u32,
        winning_number: u16,
        sync: SyncPolicy,
    ) -> Result<(CsvStore, Recovery), StorageError> {
        let mut recovery = Recovery {
            agencies: vec![RecoveredAgency::default(); agencies as usize],
        };
        let bets = open_private(bets_path)?;
        let on_disk = bets.metadata().map_err(io_err(bets_path))?.len();
        let complete = complete_lines_len(&mut &bets, on_disk).map_err(io_err(bets_path))?;
        let other_lottery = |e| match e {
            StorageError::OtherLottery {
                path,
                line,
                agency,
                agencies,
                ..
            } => StorageError::OtherLottery {
                bets: bets_path.to_owned(),
                journal: journal_path.to_owned(),
                path,
                line,
                agency,
                agencies,
            },
            e => e,
        };
        let rows = recover_bets(&bets, bets_path, complete, winning_number, &mut recovery)
            .map_err(other_lottery)?;
        let (journal, journal_len, journal_cut) = open_append(journal_path)?;
        let hole = rows.hole.map(|h| (bets_path, h));
        recover_journal(&journal, journal_path, journal_len, hole, &mut recovery)
            .map_err(other_lottery)?;
        // Only now, the files found consistent, is the torn tail cut off.
        let bets_len = rows.len;
        let bets_cut = on_disk - bets_len;
        let nul_bytes = if rows.hole.is_some() {
            count_nul_bytes(&bets, bets_len, on_disk).map_err(io_err(bets_path))?
        } else {
            0
        };
        if bets_cut > 0 {
            bets.set_len(bets_len).map_err(io_err(bets_path))?;
            bets.sync_all().map_err(io_err(bets_path))?;
        }
        if sync == SyncPolicy::Always {
            sync_parent_dir(bets_path)?;
            if journal_path.parent() != bets_path.parent() {
                sync_parent_dir(journal_path)?;
            }
        }
        // Appends go where recovery stopped reading.
        (&bets)
            .seek(SeekFrom::Start(bets_len))
            .map_err(io_err(bets_path))?;
        (&journal)
            .seek(SeekFrom::Start(journal_len))
            .map_err(io_err(journal_path))?;
        match rows.hole {
            Some(hole) => warn!(
                "action: recuperar_apuestas | result: success | cortados_bytes: {bets_cut} | desde_linea: {} | bytes_nulos: {nul_bytes} | motivo: NUL bytes past the synced rows, a power cut's torn tail | archivo: {}",
                hole.line,
                bets_path.display()
            ),
            None if bets_cut > 0 => warn!(
                "action: recuperar_apuestas | result: success | cortados_bytes: {bets_cut} | archivo: {}",
                bets_path.display()
            ),
            None => {}
        }
        if journal_cut > 0 {
            warn!(
                "action: recuperar_journal | result: success | cortados_bytes: {journal_cut} | archivo: {}",
                journal_path.display()
            );
        }
        let rows = Vec::with_capacity(1 << 16);
        Ok((
            CsvStore {
                bets,
                bets_path: bets_path.to_owned(),
                bets_len,
                journal,
                journal_path: journal_path.to_owned(),
                journal_len,
                rows,
                written_ahead: 0,
                ahead_error: None,
                staged_closes: Vec::new(),
                staged_bets: 0,
                sync,
                cuts: Cuts {
                    bets: bets_cut,
                    journal: journal_cut,
                },
            },
            recovery,
        ))
    }

    /// Stages one bet of `agency` (already validated) as a row of `bets.csv`.
    pub fn stage_bet(&mut self, agency: u32, bet: &BetFields<'_>) {
        let checked = bet::check(
            bet,
            Date {
                year: u16::MAX,
                month: 12,
                day: 31,
            },
        )
        .expect("the caller validated the bet");
        push_row(&mut self.rows, agency, bet, checked);
        self.staged_bets += 1;
        self.write_ahead();
    }

    /// Stages the durable record that `agency` is closed with `total` bets.
    pub fn stage_close(&mut self, agency: u32, total: u32) {
        writeln!(self.staged_closes, "DONE {agency} {total}").expect("writing to memory");
    }

    /// How many bets are staged for the next commit.
    pub fn staged_bets(&self) -> u64 {
        self.staged_bets
    }

    pub fn has_staged(&self) -> bool {
        self.staged_bets > 0 || !self.staged_closes.is_empty()
    }

    /// Appends and syncs everything staged. On error nothing staged is kept:
    /// both files are cut back to their last committed length.
    pub fn commit(&mut self) -> Result<CommitStats, CommitError> {
        let stats = CommitStats {
            bets: self.staged_bets,
            closes: self.staged_closes.iter().filter(|&&b| b == b'\n').count() as u64,
        };
        let mut rows = std::mem::take(&mut self.rows);
        let closes = std::mem::take(&mut self.staged_closes);
        self.staged_bets = 0;
        let result = self.write_both(&rows, &closes);
        self.written_ahead = 0;
        // Keep the buffers' capacity for the next iteration.
        rows.clear();
        self.rows = rows;
        self.staged_closes = closes;
        self.staged_closes.clear();
        result.map(|_| stats)
    }

    fn write_both(&mut self, rows: &[u8], closes: &[u8]) -> Result<(), CommitError> {
        let ahead = self.written_ahead;
        if !rows.is_empty()
            && let Err(e) = match self.ahead_error.take() {
                Some(e) => Err(e),
                None => append(&mut self.bets, &rows[ahead..], self.sync),
            }
        {
            cut_back(&mut self.bets, &self.bets_path, self.bets_len)?;
            return Err(e.into());
        }
        if !closes.is_empty()
            && let Err(e) = append(&mut self.journal, closes, self.sync)
        {
            // The whole group fails: its bets go too, even if they reached
            // the disk, because the loop forgets them and the agencies will
            // send them again.
            cut_back(&mut self.journal, &self.journal_path, self.journal_len)?;
            cut_back(&mut self.bets, &self.bets_path, self.bets_len)?;
            return Err(e.into());
        }
        if self.sync == SyncPolicy::Always && !rows.is_empty() {
            forget_cached(&self.bets, self.bets_len, rows.len() as u64);
        }
        self.bets_len += rows.len() as u64;
        self.journal_len += closes.len() as u64;
        Ok(())
    }

    /// Writes the staged rows to the file, once a full [`WRITE_AHEAD`] of
    /// them waits, and starts the disk on them: the commit's `fdatasync`
    /// then waits for the last rows and the journal, not for the whole
    /// group's transfer, which ran while the loop decoded the rest. The rows
    /// are whole (the batches they belong to checked), but not acknowledged:
    /// a failed commit cuts them back with the rest of its group, and a
    /// crash leaves at most rows the agencies' retries find stored, as a
    /// crash between a commit's write and its sync always could.
    fn write_ahead(&mut self) {
        if self.sync != SyncPolicy::Always
            || self.ahead_error.is_some()
            || self.rows.len() - self.written_ahead < WRITE_AHEAD
        {
            return;
        }
        let chunk = &self.rows[self.written_ahead..];
        match self.bets.write_all(chunk) {
            Ok(()) => {
                start_writeback(
                    &self.bets,
                    self.bets_len + self.written_ahead as u64,
                    chunk.len() as u64,
                );
                self.written_ahead = self.rows.len();
            }
            Err(e) => self.ahead_error = Some(e),
        }
    }

    /// Syncs and closes both files, logging each.
    pub fn close(self) -> io::Result<()> {
        self.bets.sync_all()?;
        info!(
            "action: cerrar_archivo | result: success | archivo: {} | bytes: {}",
            self.bets_path.display(),
            self.bets_len
        );
        drop(self.bets);
        self.journal.sync_all()?;
        info!(
            "action: cerrar_archivo | result: success | archivo: {} | bytes: {}",
            self.journal_path.display(),
            self.journal_len
        );
        Ok(())
    }

    pub fn bets_path(&self) -> &Path {
        &self.bets_path
    }

    /// What the open cut off the files' torn tails.
    pub fn cuts(&self) -> Cuts {
        self.cuts
    }
}

impl Store for CsvStore {
    /// The rows go in the agency's order of arrival, which is its positions'
    /// order: the file needs no position column. Each bet is checked and
    /// written in the same walk; an invalid one takes the batch's rows back.
    fn stage_bets<'b>(
        &mut self,
        batch: BatchToStage<'b>,
        winners: &mut Vec<&'b [u8]>,
    ) -> Result<(), InvalidBet> {
        let (mark, winners_mark) = (self.rows.len(), winners.len());
        let agency_field = AgencyField::new(batch.agency);
        for (index, (b, text)) in batch.bets.iter_text().enumerate().skip(batch.skip) {
            match bet::check(&b, batch.today) {
                Ok(checked) => {
                    push_frame_row(&mut self.rows, agency_field, &b, text, checked);
                    if b.number == batch.winning {
                        winners.push(b.document);
                    }
                }
                Err(why) => {
                    self.rows.truncate(mark);
                    winners.truncate(winners_mark);
                    return Err(InvalidBet { index, why });
                }
            }
        }
        self.staged_bets += (batch.bets.len() - batch.skip) as u64;
        self.write_ahead();
        Ok(())
    }

    fn stage_close(&mut self, agency: u32, total: u32) {
        CsvStore::stage_close(self, agency, total)
    }

    fn staged_bets(&self) -> u64 {
        self.staged_bets
    }

    fn has_staged(&self) -> bool {
        CsvStore::has_staged(self)
    }

    /// On the calling thread: a local `fdatasync` is the loop's own work,
    /// and its group's ACKs wait for nothing else.
    fn start_commit(&mut self, _draws: bool) -> Started {
        Started::Done(Finished {
            result: CsvStore::commit(self),
            drawn: None,
        })
    }

    fn location(&self) -> String {
        format!("archivo: {}", self.bets_path.display())
    }

    fn close(self: Box<Self>) -> io::Result<()> {
        CsvStore::close(*self)
    }
}

impl fmt::Debug for CsvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvStore")
            .field("bets_path", &self.bets_path)
            .field("bets_len", &self.bets_len)
            .field("journal_path", &self.journal_path)
            .field("journal_len", &self.journal_len)
            .finish_non_exhaustive()
    }
}

fn append(file: &mut File, bytes: &[u8], sync: SyncPolicy) -> io::Result<()> {
    file.write_all(bytes)?;
    if sync == SyncPolicy::Always {
        file.sync_data()?;
    }
    Ok(())
}

/// Staged rows go to the file ahead of their commit once this many bytes
/// of them wait: a large group written only at its commit would make the
/// commit wait for all of its bytes to reach the disk, not just the last
/// chunk's; smaller chunks only add system calls. The size is the bench's
/// choice (`bench/run.sh standard`, alternating sizes).
const WRITE_AHEAD: usize = 256 << 10;

/// Starts writing `len` bytes at `offset` of `file` to the disk, without
/// waiting for them: `POSIX_FADV_DONTNEED` queues the write-back of the
/// dirty pages of the range (and drops none of them: they are dirty).
fn start_writeback(file: &File, offset: u64, len: u64) {
    // Only advice: if the kernel declines, the commit's fdatasync writes them.
    let len = std::num::NonZeroU64::new(len);
    let _ = rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::DontNeed);
}

/// Tells the kernel it may drop the synced (so clean) pages of `len` bytes
/// at `offset` from its cache: the central never reads them back while it
/// runs, and a page cache that keeps growing with the bets file makes every
/// later write slower (page allocation and reclaim), so throughput would
/// fall as the file grows.
fn forget_cached(file: &File, offset: u64, len: u64) {
    // Only advice: if the kernel declines, the pages stay cached, no harm.
    // A length of 0 (`None`) means "to the end of the file", as in posix_fadvise.
    let len = std::num::NonZeroU64::new(len);
    let _ = rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::DontNeed);
}

/// Cuts a file back to `len` after a failed append, so no torn or
/// unacknowledged row stays.
///
/// If even that fails, the file holds rows the loop does not count, and
/// carrying on could store them twice: the error is fatal, the central
/// stops (exit 1), and the next start recovers the counts from the file
/// itself.
fn cut_back(file: &mut File, path: &Path, len: u64) -> Result<(), CommitError> {
    file.set_len(len)
        .and_then(|_| file.seek(SeekFrom::Start(len)).map(drop))
        .and_then(|_| file.sync_all())
        .map_err(|e| {
            log::error!(
                "action: cortar_archivo | result: fail | archivo: {} | error: {e} | detail: stopping so that a restart recovers from the file",
                path.display()
            );
            CommitError::fatal(format!(
                "cannot cut {} back after a failed write ({e}): it may hold rows nothing acknowledged; \
                 stopping so that a restart recovers from the file",
                path.display()
            ))
        })
}

/// Makes `path`'s directory entry durable. A file just created (by this
/// run, or by one that died before doing this) is on the disk only once its
/// directory is synced: syncing the file itself does not record the name,
/// and a power cut would take the file, with every bet acknowledged in it.
/// Done at every start, before the first ACK.
fn sync_parent_dir(path: &Path) -> Result<(), StorageError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes the whole rows of the bets file at `path` to `out` as they are,
/// up to its last line end (a row being written, or torn, is left out), for
/// `lottery-export`. Returns how many rows it wrote.
pub fn export_csv(path: &Path, out: &mut impl Write) -> io::Result<u64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let complete = complete_lines_len(&mut &file, len)?;
    (&file).seek(SeekFrom::Start(0))?;
    let mut rows = Read::take(&file, complete);
    let mut chunk = vec![0u8; 1 << 16];
    let mut count = 0u64;
    loop {
        match rows.read(&mut chunk)? {
            0 => break,
            n => {
                count += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                out.write_all(&chunk[..n])?;
            }
        }
    }
    out.flush()?;
    Ok(count)
}

/// Opens `path` for appending (see [`open_private`]), and cuts a torn last
/// line off. Returns the file, its length after the cut, and how many bytes
/// were cut.
fn open_append(path: &Path) -> Result<(File, u64, u64), StorageError> {
    let mut file = open_private(path)?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let kept = complete_lines_len(&mut &file, len).map_err(io_err(path))?;
    if kept < len {
        file.set_len(kept).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
    }
    file.seek(SeekFrom::Start(kept)).map_err(io_err(path))?;
    Ok((file, kept, len - kept))
}

/// Opens `path` for reading and writing, creating it readable and writable
/// by its owner only (mode 0600 before the umask): the files hold people's
/// names and documents. A file an older version created readable by its
/// group or others loses those bits here; if it cannot (the central is not
/// its owner), that is logged and the central goes on.
fn open_private(path: &Path) -> Result<File, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    let mode = file.metadata().map_err(io_err(path))?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        let private = mode & 0o700;
        match file.set_permissions(Permissions::from_mode(private)) {
            Ok(()) => info!(
                "action: restringir_permisos | result: success | archivo: {} | modo_anterior: {mode:o} | modo: {private:o}",
                path.display()
            ),
            Err(e) => warn!(
                "action: restringir_permisos | result: fail | archivo: {} | modo: {mode:o} | error: {e}",
                path.display()
            ),
        }
    }
    Ok(file)
}

/// The length of the file up to and including its last `\n`.
fn complete_lines_len(file: &mut &File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Where the bets file's valid rows end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RowsEnd {
    /// The length of the valid rows: what the file keeps.
    len: u64,
    /// The first row holding a NUL byte, where a power cut's torn tail
    /// starts, if there is one.
    hole: Option<Hole>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hole {
    line: u64,
}

/// Reads the rows of the first `len` bytes of the bets file into
/// `recovery`, up to the first row holding a NUL byte (a power cut's torn
/// tail starts there). A row wrong in any other way is corruption.
fn recover_bets(
    file: &File,
    path: &Path,
    len: u64,
    winning_number: u16,
    recovery: &mut Recovery,
) -> Result<RowsEnd, StorageError> {
    let mut file = file;
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    let reader = io::BufReader::with_capacity(1 << 20, Read::take(file, len));
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let agencies = recovery.agencies.len();
    let mut line = 0u64;
    // Where the reader stood after the last valid row (its line end may
    // still be ahead: see `line_before_first_nul`).
    let mut rows_end = 0;
    loop {
        line += 1;
        let corrupt = |why: String| StorageError::Corrupt {
            path: path.to_owned(),
            line,
            why,
        };
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(corrupt(e.to_string())),
        }
        if record.as_slice().contains(&0) {
            return Ok(RowsEnd {
                len: line_before_first_nul(file, rows_end).map_err(io_err(path))?,
                hole: Some(Hole { line }),
            });
        }
        if record.len() != 6 {
            return Err(corrupt(format!("{} fields instead of 6", record.len())));
        }
        let agency = parse_u32(&record[0])
            .filter(|&a| a >= 1)
            .ok_or_else(|| corrupt("agency is not a positive number".into()))?;
        if agency as usize > agencies {
            return Err(other_lottery(path, line, agency, agencies));
        }
        let document = std::str::from_utf8(&record[3])
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| corrupt("document is not digits".into()))?;
        let number = parse_u32(&record[5])
            .filter(|&n| n <= bet::MAX_NUMBER as u32)
            .ok_or_else(|| corrupt("number is not 0..=9999".into()))?;
        let a = &mut recovery.agencies[agency as usize - 1];
        a.stored += 1;
        if number as u16 == winning_number {
            a.winners.push(document.into());
        }
        rows_end = csv.position().byte();
    }
    Ok(RowsEnd { len, hole: None })
}

/// The end of the last whole line before the first NUL byte from `from` on
/// (`from` itself when none ends in between). The `csv` reader stops at
/// the CR of a CRLF and skips a lone CR as an empty line, so the line end
/// is found in the bytes, not taken from the reader's position.
fn line_before_first_nul(file: &File, from: u64) -> io::Result<u64> {
    let mut file = file;
    file.seek(SeekFrom::Start(from))?;
    let mut chunk = vec![0u8; 64 * 1024];
    let (mut at, mut kept) = (from, from);
    loop {
        let n = file.read(&mut chunk)?;
        let bytes = &chunk[..n];
        let nul = bytes.iter().position(|&b| b == 0);
        let before = &bytes[..nul.unwrap_or(n)];
        if let Some(i) = before.iter().rposition(|&b| b == b'\n') {
            kept = at + i as u64 + 1;
        }
        if nul.is_some() || n == 0 {
            return Ok(kept);
        }
        at += n as u64;
    }
}

/// How many bytes from `start` to `end` of `file` are NUL.
fn count_nul_bytes(file: &File, start: u64, end: u64) -> io::Result<u64> {
    let mut file = file;
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Read::take(file, end - start);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut nul = 0;
    loop {
        match tail.read(&mut chunk)? {
            0 => return Ok(nul),
            n => nul += chunk[..n].iter().filter(|&&b| b == 0).count() as u64,
        }
    }
}

/// Reads the journal's closes into `recovery`, each checked against the
/// bets recovered. `hole` is where the bets file's torn tail starts, if it
/// has one: a close counting bets past it means that tail held synced rows.
fn recover_journal(
    file: &File,
    path: &Path,
    len: u64,
    hole: Option<(&Path, Hole)>,
    recovery: &mut Recovery,
) -> Result<(), StorageError> {
    let mut file = file;
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    let mut text = String::new();
    Read::take(file, len)
        .read_to_string(&mut text)
        .map_err(io_err(path))?;
    for (i, entry) in text.lines().enumerate() {
        let corrupt = |why: String| StorageError::Corrupt {
            path: path.to_owned(),
            line: i as u64 + 1,
            why,
        };
        let mut words = entry.split(' ');
        let (Some("DONE"), Some(agency), Some(total), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(corrupt(format!(
                "expected `DONE <agency> <total>`, found {entry:?}"
            )));
        };
        let (Ok(agency), Ok(total)) = (agency.parse::<u32>(), total.parse::<u32>()) else {
            return Err(corrupt(format!("bad numbers in {entry:?}")));
        };
        if agency == 0 {
            return Err(corrupt("agency 0 closed".into()));
        }
        let agencies = recovery.agencies.len();
        let Some(a) = recovery.agencies.get_mut(agency as usize - 1) else {
            return Err(other_lottery(path, i as u64 + 1, agency, agencies));
        };
        if let Some((bets_path, hole)) = hole
            && total > a.stored
        {
            // Its bets were synced before its DONE: the NUL bytes are
            // among synced rows, not in a power cut's tail.
            return Err(StorageError::Corrupt {
                path: bets_path.to_owned(),
                line: hole.line,
                why: format!(
                    "NUL bytes among bets the journal says were synced ({} line {}: agency \
                     {agency} closed with {total} bets, {} before them)",
                    path.display(),
                    i + 1,
                    a.stored
                ),
            });
        }
        if total != a.stored {
            return Err(corrupt(format!(
                "agency {agency} closed with {total} bets but the bets file holds {}",
                a.stored
            )));
        }
        a.closed = true;
    }
    Ok(())
}

/// `open` fills in both file names.
fn other_lottery(path: &Path, line: u64, agency: u32, agencies: usize) -> StorageError {
    StorageError::OtherLottery {
        bets: PathBuf::new(),
        journal: PathBuf::new(),
        path: path.to_owned(),
        line,
        agency,
        agencies: agencies as u32,
    }
}

fn parse_u32(field: &[u8]) -> Option<u32> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Date;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lottery-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn bet<'a>(first: &'a str, doc: &'a str, number: u16) -> BetFields<'a> {
        BetFields {
            first_name: first.as_bytes(),
            last_name: b"Lorca",
            document: doc.as_bytes(),
            birthdate: Date {
                year: 1999,
                month: 3,
                day: 7,
            },
            number,
        }
    }

    fn open(d: &Path, agencies: u32) -> Result<(CsvStore, Recovery), StorageError> {
        CsvStore::open(
            &d.join("bets.csv"),
            &d.join("bets.csv.journal"),
            agencies,
            7574,
            SyncPolicy::Always,
        )
    }

    #[test]
    fn rows_are_written_in_the_course_format_with_minimal_quoting() {
        let d = dir("format");
        let (mut s, _) = open(&d, 2).unwrap();
        s.stage_bet(1, &bet("Ana", "00123", 7574));
        s.stage_bet(2, &bet("Pérez, \"hijo\"", "9", 0));
        assert!(s.has_staged());
        assert_eq!(s.commit().unwrap().bets, 2);
        let text = std::fs::read_to_string(d.join("bets.csv")).unwrap();
        assert_eq!(
            text,
            "1,Ana,Lorca,00123,1999-03-07,7574\r\n2,\"Pérez, \"\"hijo\"\"\",Lorca,9,1999-03-07,0\r\n"
        );
    }

    #[test]
    fn a_restart_recovers_counts_winners_and_closed_agencies() {
        let d = dir("recover");
        {
            let (mut s, _) = open(&d, 3).unwrap();
            s.stage_bet(1, &bet("A", "1", 7574));
            s.stage_bet(1, &bet("B", "2", 1));
            s.stage_bet(2, &bet("C", "3", 7574));
            s.stage_close(1, 2);
            s.commit().unwrap();
        }
        let (s, r) = open(&d, 3).unwrap();
        assert_eq!(
            r.agencies[0],
            RecoveredAgency {
                stored: 2,
                closed: true,
                winners: vec!["1".into()]
            }
        );
        assert_eq!(
            r.agencies[1],
            RecoveredAgency {
                stored: 1,
                closed: false,
                winners: vec!["3".into()]
            }
        );
        assert_eq!(r.agencies[2], RecoveredAgency::default());
        assert_eq!(s.cuts(), Cuts::default());
    }

    #[test]
    fn a_torn_last_row_and_journal_entry_are_cut_off() {
        let d = dir("torn");
        {
            let (mut s, _) = open(&d, 1).unwrap();
            s.stage_bet(1, &bet("A", "1", 5));
            s.commit().unwrap();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.join("bets.csv"))
            .unwrap();
        f.write_all(b"1,Half,Writ").unwrap();
        let mut j = OpenOptions::new()
            .append(true)
            .open(d.join("bets.csv.journal"))
            .unwrap();
        j.write_all(b"DONE 1").unwrap();
        let (mut s, r) = open(&d, 1).unwrap();
        assert_eq!(r.agencies[0].stored, 1);
        assert!(!r.agencies[0].closed);
        assert_eq!((s.cuts().bets, s.cuts().journal), (11, 6));
        s.stage_bet(1, &bet("B", "2", 5));
        s.commit().unwrap();
        let text = std::fs::read_to_string(d.join("bets.csv")).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with("1,B,Lorca,2,1999-03-07,5\r\n"));
    }

    /// `rows` of agency `agency`, each a whole line.
    fn rows_of(agency: u32, docs: std::ops::Range<u32>) -> String {
        docs.map(|d| format!("{agency},A,B,{d},1999-01-01,5\r\n"))
            .collect()
    }

    #[test]
    fn nul_bytes_past_the_synced_rows_and_the_rows_after_them_are_cut_off() {
        // A power cut's tail: a whole unsynced row, part of the next, a
        // hole where a block never reached the disk, then later blocks.
        let synced = rows_of(1, 1..3) + &rows_of(2, 1..2);
        let tails: [(&str, Vec<u8>); 3] = [
            ("a hole right after the synced rows", b"\0\0\0\0".to_vec()),
            ("a whole unsynced row, then part of one", {
                let mut t = rows_of(2, 2..3).into_bytes();
                t.extend_from_slice(b"2,A,B,3,19\0\0\0");
                t
            }),
            ("the hole's line holds a CR", b"\r\0\0".to_vec()),
        ];
        for (i, (what, tail)) in tails.iter().enumerate() {
            let d = dir(&format!("hole-{i}"));
            let mut bytes = synced.clone().into_bytes();
            bytes.extend_from_slice(tail);
            bytes.extend(std::iter::repeat_n(0u8, 5000));
            bytes.extend_from_slice(b"Z,B,5,1999-01-01,5\r\n");
            bytes.extend_from_slice(rows_of(2, 6..9).as_bytes());
            bytes.extend_from_slice(b"2,A,B,9,1999-01");
            std::fs::write(d.join("bets.csv"), &bytes).unwrap();
            std::fs::write(d.join("bets.csv.journal"), "DONE 1 2\n").unwrap();
            let (mut s, r) = open(&d, 2).unwrap();
            let kept = std::fs::read_to_string(d.join("bets.csv")).unwrap();
            let unsynced_row = if i == 1 {
                rows_of(2, 2..3)
            } else {
                String::new()
            };
            let expected = synced.clone() + &unsynced_row;
            assert_eq!(kept, expected, "{what}");
            assert_eq!(s.cuts().bets, (bytes.len() - kept.len()) as u64, "{what}");
            assert_eq!(r.agencies[0].stored, 2, "{what}");
            assert!(r.agencies[0].closed, "{what}");
            let whole_rows_of_2 = if i == 1 { 2 } else { 1 };
            assert_eq!(r.agencies[1].stored, whole_rows_of_2, "{what}");
            // Appends go where the kept rows end.
            s.stage_bet(2, &bet("C", "7", 1));
            s.commit().unwrap();
            let text = std::fs::read_to_string(d.join("bets.csv")).unwrap();
            assert_eq!(text, expected + "2,C,Lorca,7,1999-03-07,1\r\n", "{what}");
        }
    }

    #[test]
    fn nul_bytes_among_rows_a_done_vouches_for_refuse_to_start_and_leave_the_files() {
        let d = dir("hole-synced");
        let mut bytes = rows_of(1, 1..2).into_bytes();
        bytes.extend_from_slice(&[0; 100]);
        bytes.extend_from_slice(rows_of(1, 3..4).as_bytes());
        bytes.extend_from_slice(rows_of(2, 1..2).as_bytes());
        std::fs::write(d.join("bets.csv"), &bytes).unwrap();
        std::fs::write(d.join("bets.csv.journal"), "DONE 1 2\n").unwrap();
        let err = open(&d, 2).unwrap_err().to_string();
        assert!(
            err.contains(
                "bets.csv is corrupt at line 2: NUL bytes among bets the journal says were synced"
            ) && err
                .contains("bets.csv.journal line 1: agency 1 closed with 2 bets, 1 before them"),
            "{err}"
        );
        assert_eq!(std::fs::read(d.join("bets.csv")).unwrap(), bytes);
        assert_eq!(
            std::fs::read_to_string(d.join("bets.csv.journal")).unwrap(),
            "DONE 1 2\n"
        );
    }

    #[test]
    fn the_files_are_created_for_their_owner_only_and_older_ones_restricted() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let d = dir("modes");
        drop(open(&d, 1).unwrap());
        assert_eq!(mode(&d.join("bets.csv")), 0o600);
        assert_eq!(mode(&d.join("bets.csv.journal")), 0o600);
        for f in ["bets.csv", "bets.csv.journal"] {
            std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o664)).unwrap();
        }
        drop(open(&d, 1).unwrap());
        assert_eq!(mode(&d.join("bets.csv")), 0o600);
        assert_eq!(mode(&d.join("bets.csv.journal")), 0o600);
    }

    #[test]
    fn corruption_before_the_last_line_refuses_to_start() {
        let d = dir("corrupt");
        std::fs::write(
            d.join("bets.csv"),
            "1,A,B,1,1999-01-01,5\r\nnot a row\r\n1,A,B,1,1999-01-01,5\r\n",
        )
        .unwrap();
        let err = open(&d, 1).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn files_of_a_lottery_with_more_agencies_are_another_lottery_not_corruption() {
        let d = dir("agencies");
        std::fs::write(
            d.join("bets.csv"),
            "1,A,B,1,1999-01-01,5\r\n7,A,B,2,1999-01-01,5\r\n",
        )
        .unwrap();
        let err = open(&d, 5).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::OtherLottery {
                    line: 2,
                    agency: 7,
                    agencies: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(!err.contains("corrupt at"), "{err}");
        for needed in [
            d.join("bets.csv").display().to_string(),
            d.join("bets.csv.journal").display().to_string(),
            "another lottery".into(),
            "AGENCIES=5".into(),
            "move or delete both files".into(),
            "BETS_FILE".into(),
        ] {
            assert!(err.contains(&needed), "no {needed:?} in: {err}");
        }
    }

    #[test]
    fn a_journal_closing_an_agency_beyond_agencies_is_another_lottery() {
        let d = dir("journal-agencies");
        std::fs::write(d.join("bets.csv.journal"), "DONE 4 0\n").unwrap();
        let err = open(&d, 3).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::OtherLottery {
                    line: 1,
                    agency: 4,
                    agencies: 3,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_journal_that_disagrees_with_the_bets_refuses_to_start() {
        let d = dir("journal");
        std::fs::write(d.join("bets.csv"), "1,A,B,1,1999-01-01,5\r\n").unwrap();
        std::fs::write(d.join("bets.csv.journal"), "DONE 1 2\n").unwrap();
        let err = open(&d, 1).unwrap_err().to_string();
        assert!(err.contains("closed with 2"), "{err}");
    }
}
