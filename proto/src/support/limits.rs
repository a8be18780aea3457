//! The process's limit on open files (`RLIMIT_NOFILE`), through `rustix`.
//!
//! Every agency connection is a descriptor, and the usual soft limit of 1024
//! is far below the thousands a central serves or a bench opens, so the
//! central, the bench and the tests all raise it. Processes they start
//! inherit it. `None` from the kernel means unlimited, read as `u64::MAX`.

use std::io;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// This process's soft limit on open files.
pub fn open_files() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Raises the soft limit on open files to `want`, or to the hard limit if
/// that is lower (`u64::MAX`: to the hard limit); never lowers it. Returns
/// the soft limit in force afterwards.
pub fn raise_open_files(want: u64) -> io::Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    let target = want.min(limit.maximum.unwrap_or(u64::MAX));
    if soft >= target {
        return Ok(soft);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        },
    )?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_the_limit_and_never_passes_the_hard_one() {
        let before = open_files();
        assert_eq!(raise_open_files(0).unwrap(), before);
        let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
        let after = raise_open_files(u64::MAX).unwrap();
        assert!(after >= before);
        assert_eq!(after, hard.max(before));
        assert_eq!(open_files(), after);
    }
}
