//! A power-cut filesystem for tests: a FUSE passthrough over a backing
//! directory that keeps what was written but not yet synced in memory, as
//! a page cache does, puts it on the backing directory (the disk) only on
//! `fsync`/`fdatasync`, and on command cuts the power: every unsynced write
//! is lost, or a random prefix of them reaches the disk with the last one
//! torn, or only each file's last unsynced write reaches it, the earlier
//! ones left as a hole of zeros. A file created since its directory was last synced disappears at a
//! cut. The next fsync can be made to fail with `EIO` or `ENOSPC`, and the
//! next fsyncs (or every one) can be made slow, as a slow or dying disk.
//!
//! Layout:
//! - [`volume`]: the model (pending operations, cuts, injected failures),
//!   with no FUSE, unit-tested on its own;
//! - `fuse`: the kernel's requests forwarded to the volume;
//! - this file: mounting ([`PowerCut`]), the commands of the
//!   `lottery-powercut` binary ([`Command`]), and whether FUSE can be used
//!   here at all ([`unavailable`]).
//!
//! A process killed with SIGKILL and a cut made right after it lose the
//! same writes: the kernel passes every `write` straight to this process
//! (direct I/O), so what the killed process wrote and did not sync is in
//! this process's memory only, and the cut drops it.

pub mod volume;

mod fuse;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use volume::CutReport;
use volume::Volume;

/// Why FUSE cannot be used on this machine, if it cannot.
pub fn unavailable() -> Option<String> {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_err()
    {
        return Some("/dev/fuse cannot be opened".into());
    }
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|p| p.join("fusermount3").is_file())
    });
    if !found {
        return Some("fusermount3 is not installed (apt-get install fuse3)".into());
    }
    None
}

/// A mounted power-cut filesystem; unmounted when dropped.
pub struct PowerCut {
    volume: Arc<Mutex<Volume>>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl PowerCut {
    /// Mounts the files of `backing` at `mountpoint` (both directories must
    /// exist).
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<PowerCut> {
        let volume = Arc::new(Mutex::new(Volume::new(backing)));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("lottery-powercut".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        let session =
            fuser::spawn_mount(fuse::PowerCutFs::new(volume.clone()), mountpoint, &config)?;
        Ok(PowerCut {
            volume,
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Cuts the power: every unsynced write is lost.
    pub fn cut(&self) -> CutReport {
        self.volume.lock().expect("the volume's lock").cut()
    }

    /// Cuts the power after a random prefix of the unsynced writes reached
    /// the disk, the last one torn.
    pub fn cut_tear(&self, seed: u64) -> CutReport {
        self.volume
            .lock()
            .expect("the volume's lock")
            .cut_tear(seed)
    }

    /// Cuts the power after only each file's last unsynced write reached the
    /// disk: the earlier ones are lost, a hole of zeros where the file grew
    /// past them.
    pub fn cut_hole(&self) -> CutReport {
        self.volume.lock().expect("the volume's lock").cut_hole()
    }

    /// Makes the next fsync of a file fail with `code` (`libc::EIO`, ...).
    pub fn fail_next_fsync(&self, code: i32) {
        self.volume
            .lock()
            .expect("the volume's lock")
            .fail_next_fsync(code)
    }

    /// Makes each of the next `count` fsyncs of a file (every one when
    /// `None`) take `delay`; a zero `delay` makes the disk fast again.
    pub fn slow_fsyncs(&self, delay: Duration, count: Option<u64>) {
        self.volume
            .lock()
            .expect("the volume's lock")
            .slow_fsyncs(delay, count)
    }

    /// How many operations are not on the disk yet.
    pub fn pending(&self) -> usize {
        self.volume
            .lock()
            .expect("the volume's lock")
            .pending()
            .len()
    }

    /// Unmounts (what is pending is lost, as at a cut).
    pub fn unmount(mut self) -> io::Result<()> {
        self.session.take().map_or(Ok(()), |s| s.umount_and_join())
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}

/// A command of the `lottery-powercut` binary, one per line on its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Cut,
    CutTear(u64),
    CutHole,
    FailNextFsync(i32),
    /// `slow-fsync MS [COUNT]`: the next COUNT fsyncs (every one without
    /// it) take MS milliseconds; `slow-fsync 0` makes the disk fast again.
    SlowFsync(Duration, Option<u64>),
    Unmount,
}

impl Command {
    pub fn parse(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["cut"] => Ok(Command::Cut),
            ["cut-hole"] => Ok(Command::CutHole),
            ["cut-tear", seed] => seed
                .parse()
                .map(Command::CutTear)
                .map_err(|_| format!("cut-tear: {seed:?} is not a seed (a number)")),
            ["fail-next-fsync", "EIO"] => Ok(Command::FailNextFsync(libc::EIO)),
            ["fail-next-fsync", "ENOSPC"] => Ok(Command::FailNextFsync(libc::ENOSPC)),
            ["fail-next-fsync", other] => {
                Err(format!("fail-next-fsync: {other:?} is not EIO or ENOSPC"))
            }
            ["slow-fsync", ms] => Ok(Command::SlowFsync(millis(ms)?, None)),
            ["slow-fsync", ms, count] => {
                let count = count
                    .parse()
                    .map_err(|_| format!("slow-fsync: {count:?} is not a count (a number)"))?;
                Ok(Command::SlowFsync(millis(ms)?, Some(count)))
            }
            ["unmount"] => Ok(Command::Unmount),
            _ => Err(format!(
                "unknown command {line:?}: cut, cut-tear SEED, cut-hole, fail-next-fsync EIO|ENOSPC, \
                 slow-fsync MS [COUNT], unmount"
            )),
        }
    }
}

fn millis(ms: &str) -> Result<Duration, String> {
    ms.parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("slow-fsync: {ms:?} is not milliseconds (a number)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(Command::parse("cut"), Ok(Command::Cut));
        assert_eq!(Command::parse(" cut-tear 42 "), Ok(Command::CutTear(42)));
        assert_eq!(Command::parse("cut-hole"), Ok(Command::CutHole));
        assert_eq!(
            Command::parse("fail-next-fsync ENOSPC"),
            Ok(Command::FailNextFsync(libc::ENOSPC))
        );
        assert_eq!(
            Command::parse("slow-fsync 200"),
            Ok(Command::SlowFsync(Duration::from_millis(200), None))
        );
        assert_eq!(
            Command::parse("slow-fsync 200 3"),
            Ok(Command::SlowFsync(Duration::from_millis(200), Some(3)))
        );
        assert!(
            Command::parse("slow-fsync fast")
                .unwrap_err()
                .contains("milliseconds")
        );
        assert!(
            Command::parse("slow-fsync 1 x")
                .unwrap_err()
                .contains("count")
        );
        assert_eq!(Command::parse("unmount"), Ok(Command::Unmount));
        assert!(Command::parse("cut-tear x").unwrap_err().contains("seed"));
        assert!(
            Command::parse("fail-next-fsync EPERM")
                .unwrap_err()
                .contains("EIO")
        );
        assert!(
            Command::parse("reboot")
                .unwrap_err()
                .contains("cut-tear SEED")
        );
    }
}
