//! The host clock shared by all member processes, and what a process can read about itself
//! from `/proc`: peak resident memory and the datagrams the kernel dropped on its sockets.

use std::collections::BTreeSet;
use std::time::Duration;

/// Nanoseconds on `CLOCK_MONOTONIC`: one clock for every process on the host, so a send
/// time stamped by one member and a receive time read by another compare directly.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` only writes the `timespec` it is given, which is a valid,
    // exclusively borrowed local; CLOCK_MONOTONIC exists on every Linux kernel, so the call
    // cannot fail (a failure would leave zeros, which the checks downstream would notice).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until `now_ns() >= t` in slices of at most 10 ms; returns at once if `t` is past.
/// Gives up after `cap` so a bad timestamp cannot hang the caller.
pub fn sleep_until(t: u64, cap: Duration) {
    let give_up = now_ns().saturating_add(cap.as_nanos() as u64);
    loop {
        let now = now_ns();
        if now >= t || now >= give_up {
            return;
        }
        std::thread::sleep(Duration::from_nanos((t - now).min(10_000_000)));
    }
}

/// Peak resident set size of this process in kB (`VmHWM` in `/proc/self/status`), or 0 if
/// the kernel does not say.
pub fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident set size of this process now, in kB (`VmRSS`), or 0 if the kernel does not say.
pub fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time this process's threads have run, in ns (the first field of each thread's
/// `/proc/self/task/*/schedstat`); threads that ended are not counted.
pub fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time the calling thread has run, in ns (`/proc/thread-self/schedstat`), or 0.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Datagrams the kernel dropped on this process's UDP sockets (receive buffer full), summed
/// from the `drops` column of `/proc/net/udp{,6}` for the socket inodes in `/proc/self/fd`;
/// `None` where that cannot be read.
pub fn udp_drops() -> Option<u64> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.insert(inode.to_string());
            }
        }
    }
    let mut drops = 0;
    let mut read_any = false;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        read_any = true;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() >= 13 && inodes.contains(cols[9]) {
                drops += cols[12].parse::<u64>().unwrap_or(0);
            }
        }
    }
    read_any.then_some(drops)
}

/// A numeric kernel setting such as `/proc/sys/net/core/rmem_max`, if readable.
pub fn sysctl(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_advances_and_proc_reads() {
        let a = now_ns();
        sleep_until(a + 2_000_000, Duration::from_secs(1));
        assert!(now_ns() >= a + 2_000_000);
        assert!(peak_rss_kb() > 0 && rss_kb() > 0 && rss_kb() <= peak_rss_kb());
        // Spinning shows as CPU time (however long the spin takes on a loaded machine).
        let (c, give_up) = (cpu_ns(), now_ns() + 10_000_000_000);
        let t = thread_cpu_ns();
        while cpu_ns() < c + 4_000_000 {
            assert!(now_ns() < give_up, "10 s of spinning never showed 4 ms of CPU time");
        }
        assert!(thread_cpu_ns() > t, "and as this thread's");
        let _sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(udp_drops(), Some(0));
    }
}
