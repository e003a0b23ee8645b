//! Where the single-server bench runs: the server on one CPU (started under `taskset`,
//! as the federation bench's `--pin-a`/`--pin-b` do through [`crate::server::Options`])
//! and the bench itself on another (`sched_setaffinity` before its runtime starts, so
//! every thread it makes inherits the CPU).

use anyhow::{Result, bail};

/// The CPUs chosen for the server and for the bench; `None` for either means unpinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub server: Option<usize>,
    pub bench: Option<usize>,
}

impl Placement {
    pub fn pinned(&self) -> bool {
        self.server.is_some()
    }

    /// The server's CPU as a `taskset -c` list.
    pub fn server_cpus(&self) -> Option<String> {
        self.server.map(|cpu| cpu.to_string())
    }

    /// Chooses from the CPUs this process may use: with `pin` unset, pinned when there
    /// are at least two; `Some(true)` insists (an error with fewer), `Some(false)` never
    /// pins. The server gets the first allowed CPU (CPU 0 on an ordinary machine) and the
    /// bench the second.
    pub fn choose(allowed: &[usize], pin: Option<bool>) -> Result<Self> {
        let unpinned = Placement {
            server: None,
            bench: None,
        };
        match (pin, allowed) {
            (Some(false), _) => Ok(unpinned),
            (_, [server, bench, ..]) => Ok(Placement {
                server: Some(*server),
                bench: Some(*bench),
            }),
            (Some(true), _) => bail!(
                "--pin needs two CPUs, one for the server and one for the bench; this process may use {}",
                allowed.len()
            ),
            (None, _) => Ok(unpinned),
        }
    }
}

/// The CPUs the calling thread may run on, in increasing order.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; an all-zero set is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size matches the set passed.
    let status = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if status != 0 {
        bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
    }
    let capacity = 8 * std::mem::size_of_val(&set);
    // SAFETY: CPU_ISSET reads the set within its size.
    Ok((0..capacity)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Restricts the calling thread, and every thread it creates from now on, to `cpu`.
/// Called before the runtime is built, so it covers the whole bench.
pub fn pin_self(cpu: usize) -> Result<()> {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of_val(&set) {
        bail!("CPU {cpu} is beyond the affinity mask");
    }
    // SAFETY: `cpu` is within the set, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the size matches the set passed.
    let status = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if status != 0 {
        bail!(
            "sched_setaffinity to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The CPUs a process may run on as the kernel reports them (`Cpus_allowed_list` in
/// `/proc/<pid>/status`, e.g. "0" or "0-1"); the bench's own with `None`.
pub fn cpus_allowed_list(pid: Option<u32>) -> Option<String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_by_default_only_with_two_cpus() {
        let two = Placement::choose(&[0, 1], None).unwrap();
        assert_eq!((two.server, two.bench), (Some(0), Some(1)));
        assert_eq!(two.server_cpus().as_deref(), Some("0"));
        // A restricted process takes the first two CPUs it may use.
        let restricted = Placement::choose(&[2, 5, 7], None).unwrap();
        assert_eq!((restricted.server, restricted.bench), (Some(2), Some(5)));
        assert!(!Placement::choose(&[0], None).unwrap().pinned());
        assert!(!Placement::choose(&[0, 1], Some(false)).unwrap().pinned());
        assert!(Placement::choose(&[0], Some(true)).is_err());
        assert!(Placement::choose(&[0, 1], Some(true)).unwrap().pinned());
    }

    #[test]
    fn this_process_may_run_somewhere() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        assert!(cpus_allowed_list(None).is_some());
    }
}
