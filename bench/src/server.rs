//! The `hearth` process under test: started on a free loopback port with a temporary
//! data directory, watched through `/proc`, stopped with SIGTERM.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tls::CertFiles;

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    tls: bool,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// How to start a server beyond the defaults: a certificate (the listener then speaks
/// HTTPS only), extra `HEARTH_*` settings, and the CPUs it may run on.
#[derive(Default)]
pub struct Options {
    pub tls: Option<CertFiles>,
    pub env: Vec<(String, String)>,
    /// A CPU list as `taskset -c` takes it ("0", "0-1"); the server is started under
    /// `taskset`, which execs it, so the process keeps its pid.
    pub cpus: Option<String>,
}

impl Server {
    /// Starts `bin` with `options` and waits until `/_matrix/client/versions` answers;
    /// `http` must trust the certificate, if any.
    pub async fn start_with(bin: &Path, http: &reqwest::Client, options: &Options) -> Result<Self> {
        let dir = tempfile::tempdir().context("create a temporary data directory")?;
        let port = free_port()?;
        let log = dir.path().join("hearth.log");
        let mut command = match &options.cpus {
            Some(cpus) => {
                let mut taskset = Command::new("taskset");
                taskset.arg("-c").arg(cpus).arg(bin);
                taskset
            }
            None => Command::new(bin),
        };
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--server-name")
            .arg(format!("localhost:{port}"))
            .env("HEARTH_REGISTRATION__ENABLED", "true")
            // Setting up registers every client from this one address and fills big
            // rooms from one account; the per-user rates of the load itself stay at
            // their defaults.
            .env("HEARTH_LIMITS__REGISTRATIONS_BURST", "1000000")
            .env("HEARTH_LIMITS__JOINS_BURST", "1000000")
            // Every client syncs from this one address (a reconnecting socket may
            // overlap its last one for a moment).
            .env("HEARTH_LIMITS__SYNCS_PER_ADDRESS", "1000000")
            .env("HEARTH_LIMITS__SYNC_SOCKETS_PER_ADDRESS", "1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).context("create the server log file")?);
        if let Some(tls) = &options.tls {
            command
                .arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            // State resolutions are logged with their time (`bigjoin` reads them).
            command.env("RUST_LOG", "warn,hearth::state_res=info");
        }
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut server = Self {
            child: Some(child),
            port,
            tls: options.tls.is_some(),
            log,
            _dir: dir,
        };
        let versions = server.url("/_matrix/client/versions");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = http.get(&versions).send().await
                && response.status().is_success()
            {
                return Ok(server);
            }
            if let Some(status) = server.child_mut().try_wait()? {
                bail!("hearth exited at start ({status}):\n{}", server.log_tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "hearth did not answer /versions within 60 s:\n{}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// The server name, which is also where other servers reach it.
    pub fn server_name(&self) -> String {
        format!("localhost:{}", self.port)
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("server running")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// The last lines the server logged, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits up to 30 s for the server to finish. On any failure the
    /// child is still owned by `self`, whose `Drop` kills it.
    pub async fn stop(mut self) -> Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.pid())?;
        // SAFETY: plain syscall on our own child's PID, which has not been waited for.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("SIGTERM: {}", std::io::Error::last_os_error());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child_mut().try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("hearth did not exit within 30 s of SIGTERM; killing it");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    /// On an early exit of the bench (an error), leave no server behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Resident memory of a process in KiB: peak (`VmHWM`) and current (`VmRSS`).
pub struct Memory {
    pub peak_kib: u64,
    pub now_kib: u64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Memory {
        peak_kib: field("VmHWM:")?,
        now_kib: field("VmRSS:")?,
    })
}

/// User plus system CPU time a process has used so far (all threads).
pub fn cpu_time(pid: Option<u32>) -> Result<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path)?;
    // Fields after the parenthesised command name, which may itself contain spaces.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let ticks: u64 = fields
        .get(11..13)
        .context("short stat")?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}

/// The whole machine's CPU time so far, from the first line of `/proc/stat`: time spent
/// busy (anything but idle and I/O wait), waiting for I/O, and in all.
#[derive(Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: Duration,
    pub iowait: Duration,
    pub total: Duration,
}

pub fn machine_cpu() -> Result<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("malformed /proc/stat")?;
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let total: u64 = (0..8).map(field).sum();
    let (idle, iowait) = (field(3), field(4));
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    let time = |t: u64| Duration::from_nanos(t * 1_000_000_000 / per_second);
    Ok(MachineCpu {
        busy: time(total - idle - iowait),
        iowait: time(iowait),
        total: time(total),
    })
}

impl MachineCpu {
    pub fn since(self, earlier: MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy.saturating_sub(earlier.busy),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            total: self.total.saturating_sub(earlier.total),
        }
    }
}

/// Totals of the machine's whole disks (not partitions, loop or RAM devices) from
/// `/proc/diskstats`: completed writes and flushes and the time spent on them.
#[derive(Clone, Copy, Default)]
pub struct DiskStats {
    pub writes: u64,
    pub write_ms: u64,
    pub sectors_written: u64,
    pub flushes: u64,
    pub flush_ms: u64,
}

pub fn disk_stats() -> Result<DiskStats> {
    let text = std::fs::read_to_string("/proc/diskstats")?;
    let mut total = DiskStats::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(name) = fields.get(2) else { continue };
        let whole_disk = Path::new("/sys/block").join(name).exists();
        if !whole_disk || name.starts_with("loop") || name.starts_with("ram") {
            continue;
        }
        // After major, minor and name: writes completed is field 5, sectors written 7,
        // ms writing 8, flushes completed 16 and ms flushing 17 (kernels since 5.5).
        let field = |i: usize| {
            fields
                .get(2 + i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        total.writes += field(5);
        total.sectors_written += field(7);
        total.write_ms += field(8);
        total.flushes += field(16);
        total.flush_ms += field(17);
    }
    Ok(total)
}

impl DiskStats {
    pub fn since(self, earlier: DiskStats) -> DiskStats {
        DiskStats {
            writes: self.writes.saturating_sub(earlier.writes),
            write_ms: self.write_ms.saturating_sub(earlier.write_ms),
            sectors_written: self.sectors_written.saturating_sub(earlier.sectors_written),
            flushes: self.flushes.saturating_sub(earlier.flushes),
            flush_ms: self.flush_ms.saturating_sub(earlier.flush_ms),
        }
    }
}
