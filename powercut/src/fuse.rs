//! The kernel's side: a `fuser` filesystem that forwards each request to
//! the [`Volume`] behind one mutex. Files are opened with direct I/O and
//! every entry and attribute has a zero time to live, so the kernel keeps no
//! copy of its own: after a cut, the next read or `stat` sees what the
//! volume holds, which is what the disk holds.

use std::ffi::OsStr;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::volume::{Attr, Kind, Volume};

const NO_CACHE: Duration = Duration::ZERO;

pub struct PowerCutFs {
    pub volume: Arc<Mutex<Volume>>,
    uid: u32,
    gid: u32,
}

impl PowerCutFs {
    pub fn new(volume: Arc<Mutex<Volume>>) -> PowerCutFs {
        // SAFETY: geteuid and getegid only return this process's ids.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        PowerCutFs { volume, uid, gid }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Volume) -> io::Result<T>) -> Result<T, Errno> {
        let mut volume = self.volume.lock().expect("the volume's lock");
        f(&mut volume).map_err(Errno::from)
    }

    fn file_attr(&self, a: Attr) -> FileAttr {
        let (kind, perm) = match a.kind {
            Kind::Dir => (FileType::Directory, 0o755),
            Kind::File => (FileType::RegularFile, 0o644),
        };
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: SystemTime::now(),
            ctime: SystemTime::now(),
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink: 1,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.with(|v| v.lookup(parent.0, name)) {
            Ok(a) => reply.entry(&NO_CACHE, &self.file_attr(a), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|v| v.getattr(ino.0)) {
            Ok(a) => reply.attr(&NO_CACHE, &self.file_attr(a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Only the size is modelled; modes and times are accepted and ignored.
        let result = self.with(|v| {
            if let Some(len) = size {
                v.set_len(ino.0, len)?;
            }
            v.getattr(ino.0)
        });
        match result {
            Ok(a) => reply.attr(&NO_CACHE, &self.file_attr(a)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|v| v.getattr(ino.0)) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.with(|v| v.create(parent.0, name)) {
            Ok(a) => reply.created(
                &NO_CACHE,
                &self.file_attr(a),
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|v| v.read(ino.0, offset, size as usize)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|v| v.write(ino.0, offset, data)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a sync.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The slow disk waits outside the volume's lock, so a cut can land
        // while this fsync has not returned.
        let delay = self
            .volume
            .lock()
            .expect("the volume's lock")
            .take_fsync_delay();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        match self.with(|v| v.fsync(ino.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.with(|v| v.readdir(ino.0)) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        for (i, (name, a)) in entries.iter().enumerate().skip(offset as usize) {
            let kind = match a.kind {
                Kind::Dir => FileType::Directory,
                Kind::File => FileType::RegularFile,
            };
            if reply.add(INodeNo(a.ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.with(|v| v.fsyncdir(ino.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
