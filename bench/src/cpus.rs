//! Two CPUs of their own for the two sides of a wake-up: the central (or
//! the floor's writer) on one, the bench's agencies (or the floor's reader)
//! on the other, for as long as the wake-up is measured.
//!
//! Why: on this kind of machine (a 2-vCPU guest) the kernel puts a task
//! woken by another process on the waker's CPU even when its own is idle.
//! Every WINNERS the central sends wakes the bench's agency thread, which
//! then runs on the central's CPU and preempts it there (a trace shows
//! nearly every one of the bench's wake-ups landing on the central's CPU
//! while the other sits idle, and the central runnable and waiting for
//! much of its wake-up). The floor's reader, a thread of the writer's own
//! process, is woken on its own CPU. Real agencies run on their own
//! machines, so neither measure should pay for the other side's work:
//! pinning both pairs the same way puts the central and the floor on the
//! same footing. Without two CPUs to give, nothing is pinned.

use std::io;

use rustix::process::Pid;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The CPUs this thread may run on, in order.
fn allowed() -> io::Result<(CpuSet, Vec<usize>)> {
    let set = sched_getaffinity(None)?;
    let cpus = (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect();
    Ok((set, cpus))
}

fn only(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu);
    set
}

/// The affinities to put back once the pinned part is over.
#[derive(Debug)]
pub struct Pinned {
    /// The caller's thread's own affinity before.
    mine: CpuSet,
    /// The other task (the central, by pid) and its affinity before.
    other: Option<(Pid, CpuSet)>,
    /// The CPU left for a second thread of the caller's (the floor's reader).
    pub spare: usize,
}

/// Pins `other` (a process or thread id; `None` pins only the caller) to
/// the first CPU this thread may use and this thread to the second. `None`
/// when fewer than two CPUs are allowed.
pub fn pin_apart(other: Option<u32>) -> io::Result<Option<Pinned>> {
    let (mine, cpus) = allowed()?;
    let [first, second, ..] = cpus[..] else {
        return Ok(None);
    };
    let other = match other {
        Some(pid) => {
            let pid = Pid::from_raw(pid as i32)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
            let before = sched_getaffinity(Some(pid))?;
            sched_setaffinity(Some(pid), &only(first))?;
            Some((pid, before))
        }
        None => None,
    };
    let (mine_cpu, spare) = if other.is_some() {
        (second, first)
    } else {
        (first, second)
    };
    sched_setaffinity(None, &only(mine_cpu))?;
    Ok(Some(Pinned { mine, other, spare }))
}

/// Pins the calling thread to `cpu` (the floor's reader, to the spare CPU).
pub fn pin_this_thread(cpu: usize) -> io::Result<()> {
    Ok(sched_setaffinity(None, &only(cpu))?)
}

impl Pinned {
    /// Puts both affinities back. The other task may be gone by now.
    pub fn restore(self) -> io::Result<()> {
        if let Some((pid, before)) = self.other {
            match sched_setaffinity(Some(pid), &before) {
                Err(e) if e == rustix::io::Errno::SRCH => {}
                other => other?,
            }
        }
        Ok(sched_setaffinity(None, &self.mine)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_apart_puts_this_thread_on_one_cpu_and_restores_it() {
        let before = sched_getaffinity(None).unwrap();
        let handle = std::thread::spawn(move || {
            let pinned = pin_apart(None).unwrap();
            if let Some(pinned) = pinned {
                assert_eq!(sched_getaffinity(None).unwrap().count(), 1);
                assert_ne!(rustix::thread::sched_getcpu(), pinned.spare);
                pinned.restore().unwrap();
            }
            sched_getaffinity(None).unwrap().count()
        });
        assert_eq!(handle.join().unwrap(), before.count());
    }
}
