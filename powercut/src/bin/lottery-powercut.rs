//! `lottery-powercut BACKING MOUNTPOINT`: mounts the power-cut filesystem
//! and takes one command per line on standard input (`cut`, `cut-tear SEED`,
//! `cut-hole`, `fail-next-fsync EIO|ENOSPC`, `slow-fsync MS [COUNT]`,
//! `unmount`), answering each with one line on
//! standard output (`ok ...` or `error ...`). It prints `mounted` once the
//! mount is ready; the end of its input unmounts too.
//!
//! Exit codes: 0 after unmounting, 2 for bad arguments, 1 when it cannot mount.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use powercut::{Command, PowerCut};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [backing, mountpoint] = &args[..] else {
        eprintln!("usage: lottery-powercut BACKING MOUNTPOINT");
        return ExitCode::from(2);
    };
    if let Some(why) = powercut::unavailable() {
        eprintln!("lottery-powercut: FUSE is not usable here: {why}");
        return ExitCode::from(1);
    }
    let fs = match PowerCut::mount(backing, mountpoint) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!(
                "lottery-powercut: cannot mount {}: {e}",
                mountpoint.display()
            );
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "mounted {}", mountpoint.display());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match Command::parse(&line) {
            Ok(Command::Cut) => format!("ok {:?}", fs.cut()),
            Ok(Command::CutTear(seed)) => format!("ok {:?}", fs.cut_tear(seed)),
            Ok(Command::CutHole) => format!("ok {:?}", fs.cut_hole()),
            Ok(Command::FailNextFsync(code)) => {
                fs.fail_next_fsync(code);
                "ok".to_string()
            }
            Ok(Command::SlowFsync(delay, count)) => {
                fs.slow_fsyncs(delay, count);
                "ok".to_string()
            }
            Ok(Command::Unmount) => break,
            Err(e) => format!("error {e}"),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
    match fs.unmount() {
        Ok(()) => {
            let _ = writeln!(out, "ok unmounted");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "lottery-powercut: cannot unmount {}: {e}",
                mountpoint.display()
            );
            ExitCode::from(1)
        }
    }
}
