//! What `/proc` says about a process: its memory and its CPU time.
//!
//! Linux only, read as text; a value that cannot be read is `None` rather
//! than an error, because a bench against a central on another host has no
//! `/proc` to read and still measures the rest.

use std::fs;

/// Peak resident set size (`VmHWM`), in kB.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS`), in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS:")
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&status, key)
}

fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Time the host took this machine's CPUs away (steal, all CPUs summed)
/// since boot, in ms: what a guest's own counters cannot see. To the tick
/// (10 ms), so a figure over a short stretch is a sign, not a measure.
pub fn steal_ms() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let ticks = parse_steal_ticks(&stat)?;
    Some(ticks as f64 * 1000.0 / rustix::param::clock_ticks_per_second() as f64)
}

fn parse_steal_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // cpu user nice system idle iowait irq softirq steal ...
    line.split_whitespace().nth(8)?.parse().ok()
}

/// User plus system CPU time so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    let per_second = rustix::param::clock_ticks_per_second();
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// `utime + stime` from a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// What the scheduler says of one thread: CPU time it ran, time it sat
/// runnable waiting for a CPU (`/proc/.../schedstat`, in ns), and its
/// voluntary and involuntary context switches (`status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sched {
    pub ran_ns: u64,
    pub waited_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl Sched {
    /// What happened between `self` and a later reading.
    pub fn until(&self, later: &Sched) -> Sched {
        Sched {
            ran_ns: later.ran_ns.saturating_sub(self.ran_ns),
            waited_ns: later.waited_ns.saturating_sub(self.waited_ns),
            voluntary: later.voluntary.saturating_sub(self.voluntary),
            involuntary: later.involuntary.saturating_sub(self.involuntary),
        }
    }
}

/// The scheduler's counters of process `pid`'s main thread.
pub fn sched(pid: u32) -> Option<Sched> {
    sched_at(&format!("/proc/{pid}"))
}

/// The scheduler's counters of the calling thread.
pub fn sched_of_this_thread() -> Option<Sched> {
    sched_at("/proc/thread-self")
}

fn sched_at(dir: &str) -> Option<Sched> {
    let stat = fs::read_to_string(format!("{dir}/schedstat")).ok()?;
    let status = fs::read_to_string(format!("{dir}/status")).ok()?;
    parse_sched(&stat, &status)
}

fn parse_sched(schedstat: &str, status: &str) -> Option<Sched> {
    let mut fields = schedstat.split_whitespace();
    let ran_ns = fields.next()?.parse().ok()?;
    let waited_ns = fields.next()?.parse().ok()?;
    let count = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].trim().parse().ok()
    };
    Some(Sched {
        ran_ns,
        waited_ns,
        voluntary: count("voluntary_ctxt_switches:")?,
        involuntary: count("nonvoluntary_ctxt_switches:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_figure_of_the_cpu_line() {
        let stat = "cpu  183747 0 22905 136726 1444 0 5125 3974 0 0\ncpu0 89709 0 10734 71734 348 0 2467 1923 0 0\n";
        assert_eq!(parse_steal_ticks(stat), Some(3974));
        assert_eq!(parse_steal_ticks("cpu0 1 2 3\n"), None);
        assert!(steal_ms().is_some_and(|ms| ms >= 0.0));
    }

    #[test]
    fn status_values_are_read_in_kb() {
        let status = "Name:\tlottery-server\nVmPeak:\t  10000 kB\nVmHWM:\t    4321 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(4321));
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(1234));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn cpu_ticks_are_counted_after_a_name_with_spaces_and_parentheses() {
        let stat = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
    }

    #[test]
    fn scheduler_counters_are_read_from_schedstat_and_status() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        let sched = parse_sched("1500 250 7\n", status).unwrap();
        assert_eq!(
            sched,
            Sched {
                ran_ns: 1500,
                waited_ns: 250,
                voluntary: 12,
                involuntary: 3
            }
        );
        let later = Sched {
            ran_ns: 2000,
            waited_ns: 300,
            voluntary: 15,
            involuntary: 3,
        };
        assert_eq!(
            sched.until(&later),
            Sched {
                ran_ns: 500,
                waited_ns: 50,
                voluntary: 3,
                involuntary: 0
            }
        );
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id();
        assert!(peak_rss_kb(me).unwrap() > 0);
        assert!(rss_kb(me).unwrap() > 0);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
    }
}
