//! The volume: a backing directory (the disk, what survives a power cut)
//! and, in memory, everything written to it but not yet synced (the page
//! cache, which a power cut loses). No FUSE here: [`crate::fuse`] forwards
//! the kernel's requests to these methods, and the unit tests call them
//! directly.
//!
//! Invariants:
//! - Reads see the durable bytes with every pending write and truncation of
//!   the file laid over them, in the order they were made.
//! - `fsync`/`fdatasync` of a file moves its pending writes to the disk;
//!   nothing else does (both are the same here: the size is data).
//! - A file created since its directory was last synced (`fsyncdir`) is not
//!   on the disk: its synced bytes are kept in memory, and a cut loses it.
//! - A cut drops every pending operation, or ([`Volume::cut_tear`]) keeps a
//!   random prefix of them, in the order made, the last one torn at a random
//!   byte, as a disk that wrote some of its queue before the power went, or
//!   ([`Volume::cut_hole`]) keeps only each file's last pending write, as a
//!   filesystem that allocated the blocks of a file's unsynced appends and
//!   wrote the later ones first: the bytes of the earlier writes that the
//!   file grew past read as zeros (a hole).
//! - An injected fsync failure writes a random torn prefix of that file's
//!   pending writes and forgets the rest, reads included: after a failed
//!   fsync nobody knows what reached the disk, and the next fsync has nothing
//!   left to write and succeeds (Linux's "fsyncgate").
//! - A slow disk ([`Volume::slow_fsyncs`]) is a delay before each of the
//!   next fsyncs of a file; the volume only counts them, the caller waits.
//!
//! What is not modelled: hard links, renames, unlinks, mkdir, symlinks
//! (refused with `EPERM`); the backing directory itself is never fsynced,
//! because only this model loses power, not the machine.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The root directory's inode number (FUSE's).
pub const ROOT: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Where a node's synced bytes are.
#[derive(Debug)]
enum Durable {
    /// In the backing directory, at the node's path.
    OnDisk,
    /// Created since its directory was last synced: the synced bytes, kept
    /// here until the directory entry reaches the disk.
    Unlinked(Vec<u8>),
}

#[derive(Debug)]
struct Node {
    parent: u64,
    name: OsString,
    kind: Kind,
    durable: Durable,
    /// The size reads see.
    size: u64,
}

/// One operation not yet on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The file's directory entry.
    Create,
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub ino: u64,
    pub op: Op,
}

/// What a node looks like to `stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
}

/// What a cut did, for the test's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Pending operations that reached the disk (a torn one included).
    pub kept: usize,
    /// Pending operations lost.
    pub dropped: usize,
    /// A write torn by the cut: bytes kept of how many.
    pub torn: Option<(usize, usize)>,
    /// Files that disappeared because their directory was never synced.
    pub files_lost: Vec<PathBuf>,
    /// Ranges a cut left as zeros before bytes that reached the disk: the
    /// file, the offset and the length of each hole.
    pub holes: Vec<(PathBuf, u64, u64)>,
}

pub struct Volume {
    backing: PathBuf,
    nodes: HashMap<u64, Node>,
    names: HashMap<(u64, OsString), u64>,
    next_ino: u64,
    /// Every operation not yet on the disk, in the order made.
    pending: Vec<Pending>,
    /// Errors the next fsyncs return, in order.
    fsync_failures: VecDeque<i32>,
    /// How long each of the next fsyncs of a file takes.
    slow_fsyncs: SlowFsyncs,
    rng: SplitMix,
}

/// A disk that takes `delay` for each of the next `left` fsyncs of a file
/// (every one while `left` is `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SlowFsyncs {
    delay: Duration,
    left: Option<u64>,
}

impl Volume {
    pub fn new(backing: &Path) -> Volume {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: OsString::new(),
                kind: Kind::Dir,
                durable: Durable::OnDisk,
                size: 0,
            },
        );
        Volume {
            backing: backing.to_owned(),
            nodes,
            names: HashMap::new(),
            next_ino: ROOT + 1,
            pending: Vec::new(),
            fsync_failures: VecDeque::new(),
            slow_fsyncs: SlowFsyncs::default(),
            rng: SplitMix(0x5eed),
        }
    }

    /// The node's path in the backing directory.
    fn path(&self, ino: u64) -> PathBuf {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let node = &self.nodes[&at];
            parts.push(node.name.clone());
            at = node.parent;
        }
        let mut path = self.backing.clone();
        path.extend(parts.iter().rev());
        path
    }

    fn attr_of(&self, ino: u64) -> Attr {
        let node = &self.nodes[&ino];
        Attr {
            ino,
            kind: node.kind,
            size: node.size,
        }
    }

    pub fn getattr(&self, ino: u64) -> io::Result<Attr> {
        if self.nodes.contains_key(&ino) {
            Ok(self.attr_of(ino))
        } else {
            Err(errno(libc::ENOENT))
        }
    }

    /// Finds `name` in `parent`: a node made through the mount, or an entry
    /// of the backing directory seen for the first time.
    pub fn lookup(&mut self, parent: u64, name: &OsStr) -> io::Result<Attr> {
        if let Some(&ino) = self.names.get(&(parent, name.to_owned())) {
            return Ok(self.attr_of(ino));
        }
        let dir = self.nodes.get(&parent).ok_or(errno(libc::ENOENT))?;
        if dir.kind != Kind::Dir || !matches!(dir.durable, Durable::OnDisk) {
            return Err(errno(libc::ENOENT));
        }
        let meta = std::fs::symlink_metadata(self.path(parent).join(name))?;
        let kind = if meta.is_dir() {
            Kind::Dir
        } else if meta.is_file() {
            Kind::File
        } else {
            return Err(errno(libc::EPERM));
        };
        let ino = self.add_node(parent, name, kind, Durable::OnDisk, meta.len());
        Ok(self.attr_of(ino))
    }

    fn add_node(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: Kind,
        durable: Durable,
        size: u64,
    ) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                parent,
                name: name.to_owned(),
                kind,
                durable,
                size,
            },
        );
        self.names.insert((parent, name.to_owned()), ino);
        ino
    }

    /// The names in directory `dir`, with their attributes.
    pub fn readdir(&mut self, dir: u64) -> io::Result<Vec<(OsString, Attr)>> {
        let mut names: Vec<OsString> = Vec::new();
        if matches!(
            self.nodes.get(&dir).map(|n| &n.durable),
            Some(Durable::OnDisk)
        ) {
            for entry in std::fs::read_dir(self.path(dir))? {
                names.push(entry?.file_name());
            }
        }
        for ((parent, name), _) in self.names.iter() {
            if *parent == dir && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Ok(attr) = self.lookup(dir, &name) {
                out.push((name, attr));
            }
        }
        Ok(out)
    }

    /// Creates an empty file whose directory entry is pending.
    pub fn create(&mut self, parent: u64, name: &OsStr) -> io::Result<Attr> {
        if self.lookup(parent, name).is_ok() {
            return Err(errno(libc::EEXIST));
        }
        if self.nodes.get(&parent).map(|n| n.kind) != Some(Kind::Dir) {
            return Err(errno(libc::ENOTDIR));
        }
        let ino = self.add_node(parent, name, Kind::File, Durable::Unlinked(Vec::new()), 0);
        self.pending.push(Pending {
            ino,
            op: Op::Create,
        });
        Ok(self.attr_of(ino))
    }

    fn file(&mut self, ino: u64) -> io::Result<&mut Node> {
        match self.nodes.get_mut(&ino) {
            Some(node) if node.kind == Kind::File => Ok(node),
            Some(_) => Err(errno(libc::EISDIR)),
            None => Err(errno(libc::ENOENT)),
        }
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        let node = self.file(ino)?;
        node.size = node.size.max(offset + data.len() as u64);
        self.pending.push(Pending {
            ino,
            op: Op::Write {
                offset,
                data: data.to_vec(),
            },
        });
        Ok(())
    }

    pub fn set_len(&mut self, ino: u64, len: u64) -> io::Result<()> {
        self.file(ino)?.size = len;
        self.pending.push(Pending {
            ino,
            op: Op::SetLen(len),
        });
        Ok(())
    }

    /// What a read of `len` bytes at `offset` sees.
    pub fn read(&mut self, ino: u64, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let size = self.file(ino)?.size;
        let end = size.min(offset + len as u64);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        self.read_durable(ino, offset, &mut buf)?;
        for p in self.pending.iter().filter(|p| p.ino == ino) {
            overlay(&p.op, offset, &mut buf);
        }
        Ok(buf)
    }

    /// Fills `buf` with the synced bytes at `offset` (zeros past their end).
    fn read_durable(&self, ino: u64, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match &self.nodes[&ino].durable {
            Durable::Unlinked(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let n = (bytes.len() - start).min(buf.len());
                buf[..n].copy_from_slice(&bytes[start..start + n]);
            }
            Durable::OnDisk => {
                let file = File::open(self.path(ino))?;
                let mut done = 0;
                while done < buf.len() {
                    match file.read_at(&mut buf[done..], offset + done as u64)? {
                        0 => break,
                        n => done += n,
                    }
                }
            }
        }
        Ok(())
    }

    /// `fsync` or `fdatasync` of a file: its pending writes reach the disk,
    /// unless a failure was injected.
    pub fn fsync(&mut self, ino: u64) -> io::Result<()> {
        self.file(ino)?;
        let mine: Vec<Pending>;
        (mine, self.pending) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.ino == ino && p.op != Op::Create);
        if let Some(code) = self.fsync_failures.pop_front() {
            let keep = self.rng.below(mine.len() + 1);
            let torn = mine.get(keep).map(|p| self.rng.torn(&p.op));
            for p in &mine[..keep] {
                self.apply(p)?;
            }
            if let (Some(p), Some(op)) = (mine.get(keep), torn) {
                self.apply(&Pending { ino: p.ino, op })?;
            }
            // The rest is forgotten, even by reads: the file is what the disk holds.
            let size = self.durable_len(ino)?;
            self.file(ino)?.size = size;
            return Err(errno(code));
        }
        for p in &mine {
            self.apply(p)?;
        }
        Ok(())
    }

    /// `fsync` of a directory: the entries created in it reach the disk.
    pub fn fsyncdir(&mut self, dir: u64) -> io::Result<()> {
        let created: Vec<Pending>;
        let nodes = &self.nodes;
        (created, self.pending) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.op == Op::Create && nodes[&p.ino].parent == dir);
        for p in &created {
            self.apply(p)?;
        }
        Ok(())
    }

    /// Makes the next fsync of a file fail with `code` (queued after any
    /// failure already injected).
    pub fn fail_next_fsync(&mut self, code: i32) {
        self.fsync_failures.push_back(code);
    }

    /// Makes each of the next `count` fsyncs of a file (every one when
    /// `None`) take `delay` before it does anything, as a slow or dying disk
    /// does; a zero `delay` makes the disk fast again. Replaces what an
    /// earlier call asked.
    pub fn slow_fsyncs(&mut self, delay: Duration, count: Option<u64>) {
        self.slow_fsyncs = SlowFsyncs { delay, left: count };
    }

    /// How long the fsync about to be made must wait, counting it against
    /// the slow fsyncs asked for. The caller waits without holding the
    /// volume, so a cut can land while the disk is busy: the fsync has not
    /// returned, and what it was syncing is lost.
    pub fn take_fsync_delay(&mut self) -> Duration {
        let slow = &mut self.slow_fsyncs;
        match &mut slow.left {
            Some(0) => Duration::ZERO,
            Some(n) => {
                *n -= 1;
                slow.delay
            }
            None => slow.delay,
        }
    }

    /// Cuts the power: every pending operation is lost.
    pub fn cut(&mut self) -> CutReport {
        self.cut_after(0, None)
    }

    /// Cuts the power after the disk wrote a random prefix of the pending
    /// operations, the last of them torn at a random byte.
    pub fn cut_tear(&mut self, seed: u64) -> CutReport {
        let mut rng = SplitMix(seed);
        let keep = rng.below(self.pending.len() + 1);
        let torn = self.pending.get(keep).map(|p| rng.torn(&p.op));
        self.cut_after(keep, torn)
    }

    /// Cuts the power after the disk wrote each file's last pending write
    /// and none of the writes before it: where that write lies past the end
    /// of what the disk holds, the bytes in between read as zeros. Every
    /// other pending operation is lost.
    pub fn cut_hole(&mut self) -> CutReport {
        let pending = std::mem::take(&mut self.pending);
        let mut files = HashSet::new();
        let mut last_writes: Vec<&Pending> = pending
            .iter()
            .rev()
            .filter(|p| matches!(p.op, Op::Write { .. }) && files.insert(p.ino))
            .collect();
        last_writes.reverse();
        let mut report = CutReport {
            kept: last_writes.len(),
            dropped: pending.len() - last_writes.len(),
            ..CutReport::default()
        };
        for p in last_writes {
            let Op::Write { offset, .. } = p.op else {
                unreachable!("only writes are listed")
            };
            let on_disk = self.durable_len(p.ino).unwrap_or(0);
            if offset > on_disk {
                report
                    .holes
                    .push((self.path(p.ino), on_disk, offset - on_disk));
            }
            // As in every cut: what cannot be written shows in the test's
            // own reading of the disk.
            let _ = self.apply(p);
        }
        self.forget_the_unsynced(&mut report);
        report
    }

    fn cut_after(&mut self, keep: usize, torn: Option<Op>) -> CutReport {
        let pending = std::mem::take(&mut self.pending);
        let mut report = CutReport {
            kept: keep,
            dropped: pending.len() - keep,
            ..CutReport::default()
        };
        for p in &pending[..keep] {
            // A pending op whose file cannot be written is reported by the
            // test's own reading of the disk; a cut cannot fail.
            let _ = self.apply(p);
        }
        if let (Some(p), Some(op)) = (pending.get(keep), torn) {
            if let (Op::Write { data, .. }, Op::Write { data: kept, .. }) = (&p.op, &op) {
                report.torn = Some((kept.len(), data.len()));
            }
            let _ = self.apply(&Pending { ino: p.ino, op });
            report.kept += 1;
            report.dropped -= 1;
        }
        self.forget_the_unsynced(&mut report);
        report
    }

    /// After a cut: files whose directory entry never reached the disk are
    /// gone, and every file is as long as the disk holds it.
    fn forget_the_unsynced(&mut self, report: &mut CutReport) {
        // What the disk does not hold is gone.
        let lost: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n.durable, Durable::Unlinked(_)))
            .map(|(&ino, _)| ino)
            .collect();
        for ino in lost {
            report.files_lost.push(self.path(ino));
            let node = self.nodes.remove(&ino).expect("listed above");
            self.names.remove(&(node.parent, node.name));
        }
        let files: Vec<u64> = self.nodes.keys().copied().collect();
        for ino in files {
            if self.nodes[&ino].kind == Kind::File {
                let size = self.durable_len(ino).unwrap_or(0);
                self.nodes.get_mut(&ino).expect("listed above").size = size;
            }
        }
    }

    fn durable_len(&self, ino: u64) -> io::Result<u64> {
        Ok(match &self.nodes[&ino].durable {
            Durable::Unlinked(bytes) => bytes.len() as u64,
            Durable::OnDisk => std::fs::metadata(self.path(ino))?.len(),
        })
    }

    /// Puts one pending operation on the disk.
    fn apply(&mut self, p: &Pending) -> io::Result<()> {
        let path = self.path(p.ino);
        let Some(node) = self.nodes.get_mut(&p.ino) else {
            return Ok(());
        };
        match (&mut node.durable, &p.op) {
            (Durable::Unlinked(bytes), Op::Create) => {
                std::fs::write(&path, bytes)?;
                node.durable = Durable::OnDisk;
            }
            (Durable::Unlinked(bytes), op) => apply_in_memory(bytes, op),
            (Durable::OnDisk, Op::Create) => {}
            (Durable::OnDisk, Op::Write { offset, data }) => {
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .write_all_at(data, *offset)?;
            }
            (Durable::OnDisk, Op::SetLen(len)) => {
                OpenOptions::new().write(true).open(&path)?.set_len(*len)?;
            }
        }
        Ok(())
    }

    /// How many operations are pending (for tests and reports).
    pub fn pending(&self) -> &[Pending] {
        &self.pending
    }
}

fn apply_in_memory(bytes: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Create => {}
        Op::Write { offset, data } => {
            let end = *offset as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*offset as usize..end].copy_from_slice(data);
        }
        Op::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

/// Lays `op` over `buf`, which holds the file's bytes from `offset`.
fn overlay(op: &Op, offset: u64, buf: &mut [u8]) {
    let buf_end = offset + buf.len() as u64;
    match op {
        Op::Create => {}
        Op::Write { offset: at, data } => {
            let start = (*at).max(offset);
            let end = (*at + data.len() as u64).min(buf_end);
            if start < end {
                buf[(start - offset) as usize..(end - offset) as usize]
                    .copy_from_slice(&data[(start - at) as usize..(end - at) as usize]);
            }
        }
        // Bytes past a truncation read as zeros if the file grows again.
        Op::SetLen(len) => {
            if *len < buf_end {
                let from = len.saturating_sub(offset) as usize;
                buf[from..].fill(0);
            }
        }
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// A small seeded generator (SplitMix64): a cut replays from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// What of `op` a disk losing power in the middle of it wrote: a prefix
    /// of a write (possibly empty); anything else all or nothing.
    fn torn(&mut self, op: &Op) -> Op {
        match op {
            Op::Write { offset, data } => Op::Write {
                offset: *offset,
                data: data[..self.below(data.len() + 1)].to_vec(),
            },
            Op::SetLen(_) | Op::Create if self.below(2) == 0 => op.clone(),
            // A write of nothing: the op did not happen.
            _ => Op::Write {
                offset: 0,
                data: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backing(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("powercut-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A volume with `f` on its disk holding `content`.
    fn with_file(name: &str, content: &[u8]) -> (Volume, u64, PathBuf) {
        let d = backing(name);
        std::fs::write(d.join("f"), content).unwrap();
        let mut v = Volume::new(&d);
        let ino = v.lookup(ROOT, OsStr::new("f")).unwrap().ino;
        (v, ino, d.join("f"))
    }

    #[test]
    fn reads_see_unsynced_writes_and_truncations_in_order() {
        let (mut v, f, path) = with_file("reads", b"abcdef");
        v.write(f, 4, b"XYZ").unwrap();
        v.set_len(f, 5).unwrap();
        v.write(f, 6, b"!").unwrap();
        assert_eq!(v.read(f, 0, 100).unwrap(), b"abcdX\0!");
        assert_eq!(v.read(f, 3, 2).unwrap(), b"dX");
        assert_eq!(v.getattr(f).unwrap().size, 7);
        assert_eq!(
            std::fs::read(path).unwrap(),
            b"abcdef",
            "nothing on the disk yet"
        );
    }

    #[test]
    fn fsync_puts_a_files_pending_writes_on_the_disk() {
        let (mut v, f, path) = with_file("fsync", b"ab");
        v.write(f, 2, b"cd").unwrap();
        v.fsync(f).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");
        assert!(v.pending().is_empty());
        v.write(f, 4, b"ef").unwrap();
        assert_eq!(
            v.cut(),
            CutReport {
                kept: 0,
                dropped: 1,
                ..CutReport::default()
            }
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");
        assert_eq!(
            v.read(f, 0, 100).unwrap(),
            b"abcd",
            "reads after the cut see the disk"
        );
    }

    #[test]
    fn a_cut_with_tear_keeps_a_prefix_of_the_writes_in_order_and_tears_the_last() {
        let mut torn_seen = 0;
        for seed in 0..200 {
            let (mut v, f, path) = with_file("tear", b"");
            let writes: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 10]).collect();
            for (i, w) in writes.iter().enumerate() {
                v.write(f, i as u64 * 10, w).unwrap();
            }
            let report = v.cut_tear(seed);
            let disk = std::fs::read(&path).unwrap();
            let whole: Vec<u8> = writes.concat();
            assert_eq!(
                disk,
                whole[..disk.len()],
                "seed {seed}: a prefix of the writes"
            );
            assert_eq!(report.kept + report.dropped, 5);
            if let Some((kept, of)) = report.torn {
                assert_eq!(of, 10);
                assert_eq!(disk.len(), (report.kept - 1) * 10 + kept, "seed {seed}");
                torn_seen += usize::from(kept > 0 && kept < 10);
            } else {
                assert_eq!(disk.len(), report.kept * 10, "seed {seed}");
            }
            assert!(v.pending().is_empty());
        }
        assert!(torn_seen > 50, "writes torn in the middle: {torn_seen}");
    }

    #[test]
    fn a_cut_with_a_hole_keeps_each_files_last_write_and_zeros_the_earlier_ones() {
        let (mut v, f, path) = with_file("hole", b"synced\n");
        let d = path.parent().unwrap().to_owned();
        std::fs::write(d.join("g"), b"").unwrap();
        let g = v.lookup(ROOT, OsStr::new("g")).unwrap().ino;
        v.write(f, 7, b"lost 1\n").unwrap();
        v.write(g, 0, b"only\n").unwrap();
        v.write(f, 14, b"lost 2\n").unwrap();
        v.write(f, 21, b"kept\n").unwrap();
        let report = v.cut_hole();
        assert_eq!((report.kept, report.dropped), (2, 2));
        assert_eq!(report.holes, vec![(path.clone(), 7, 14)]);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"synced\n\0\0\0\0\0\0\0\0\0\0\0\0\0\0kept\n"
        );
        assert_eq!(std::fs::read(d.join("g")).unwrap(), b"only\n", "no hole");
        assert_eq!(v.getattr(f).unwrap().size, 26, "reads see the disk");
        assert!(v.pending().is_empty());
    }

    #[test]
    fn a_file_created_since_its_directory_was_synced_disappears_at_a_cut() {
        let d = backing("create");
        let mut v = Volume::new(&d);
        let f = v.create(ROOT, OsStr::new("new")).unwrap().ino;
        v.write(f, 0, b"synced").unwrap();
        v.fsync(f).unwrap();
        assert!(!d.join("new").exists(), "its entry is not on the disk");
        assert_eq!(v.read(f, 0, 100).unwrap(), b"synced");
        let report = v.cut();
        assert_eq!(report.files_lost, vec![d.join("new")]);
        assert!(v.lookup(ROOT, OsStr::new("new")).is_err());
        assert!(!d.join("new").exists());
    }

    #[test]
    fn a_synced_directory_keeps_its_new_file_and_the_files_synced_bytes() {
        let d = backing("dirsync");
        let mut v = Volume::new(&d);
        let f = v.create(ROOT, OsStr::new("new")).unwrap().ino;
        v.write(f, 0, b"synced").unwrap();
        v.fsync(f).unwrap();
        v.fsyncdir(ROOT).unwrap();
        v.write(f, 6, b" not").unwrap();
        let report = v.cut();
        assert!(report.files_lost.is_empty());
        assert_eq!(std::fs::read(d.join("new")).unwrap(), b"synced");
        assert_eq!(v.lookup(ROOT, OsStr::new("new")).unwrap().size, 6);
    }

    #[test]
    fn a_failed_fsync_returns_its_error_once_and_forgets_what_it_did_not_write() {
        for seed in 0..50 {
            let (mut v, f, path) = with_file("fail", b"ok\n");
            v.rng = SplitMix(seed);
            v.write(f, 3, b"row 1\n").unwrap();
            v.write(f, 9, b"row 2\n").unwrap();
            v.fail_next_fsync(libc::ENOSPC);
            let err = v.fsync(f).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
            let disk = std::fs::read(&path).unwrap();
            assert!(
                b"ok\nrow 1\nrow 2\n".starts_with(&disk),
                "seed {seed}: {disk:?}"
            );
            assert_eq!(v.read(f, 0, 100).unwrap(), disk, "reads see only the disk");
            // The retry succeeds with nothing to write: believing it would be wrong.
            v.fsync(f).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), disk);
        }
    }

    #[test]
    fn slow_fsyncs_delay_exactly_the_next_count_and_every_one_without_a_count() {
        let d = backing("slow");
        let mut v = Volume::new(&d);
        assert_eq!(
            v.take_fsync_delay(),
            Duration::ZERO,
            "a fast disk by default"
        );
        let ms = Duration::from_millis(200);
        v.slow_fsyncs(ms, Some(2));
        assert_eq!(v.take_fsync_delay(), ms);
        assert_eq!(v.take_fsync_delay(), ms);
        assert_eq!(v.take_fsync_delay(), Duration::ZERO, "only the next 2");
        v.slow_fsyncs(ms, None);
        for _ in 0..5 {
            assert_eq!(v.take_fsync_delay(), ms);
        }
        v.slow_fsyncs(Duration::ZERO, None);
        assert_eq!(v.take_fsync_delay(), Duration::ZERO, "fast again");
    }

    #[test]
    fn a_truncation_synced_after_a_failed_fsync_leaves_exactly_the_committed_bytes() {
        let (mut v, f, path) = with_file("cutback", b"ok\n");
        v.write(f, 3, b"torn row\n").unwrap();
        v.fail_next_fsync(libc::EIO);
        assert!(v.fsync(f).is_err());
        v.set_len(f, 3).unwrap();
        v.fsync(f).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"ok\n");
    }
}
