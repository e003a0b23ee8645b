//! The stable-Rust driver: replays a target's corpus and regression inputs, then feeds it
//! random mutations of them for a time, seeded (the seed is printed, so a run can be
//! repeated). A panic, an input that runs longer than the hang limit, or one that holds
//! more memory than the memory limit is a finding: the input is written to
//! `fuzz/findings/<target>/` and the run fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::alloc;
use crate::mutate::{Rng, mutate};
use crate::targets::Target;

/// How the driver runs a target.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Time spent on mutations after the corpus has been replayed.
    pub seconds: f64,
    pub seed: u64,
    /// An input that runs longer than this is a hang.
    pub hang: Duration,
    /// An input whose peak memory (above what was live before it) is larger is a finding.
    pub memory: isize,
}

impl Options {
    pub fn new(seconds: f64, seed: u64) -> Self {
        Self {
            seconds,
            seed,
            hang: Duration::from_secs(10),
            memory: 512 << 20,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub executions: u64,
    pub corpus: usize,
    /// Mutants kept because the target parsed them (they seed further mutations).
    pub kept: usize,
    pub peak_bytes: isize,
    /// The longest one input ran.
    pub slowest: Duration,
    pub elapsed: Duration,
}

/// A failing input and why.
#[derive(Debug)]
pub struct Finding {
    pub reason: String,
    pub input: PathBuf,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (input saved to {})",
            self.reason,
            self.input.display()
        )
    }
}

pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The inputs of `dir`, in name order.
pub fn read_inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|p| p.is_file());
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes)))
        .collect()
}

/// The input being run, for the watchdog and the allocator to write out.
static CURRENT: Mutex<Option<(&'static str, Vec<u8>)>> = Mutex::new(None);
/// When the current input started, in milliseconds since [`EPOCH`]; 0 between inputs.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static WATCHDOG: AtomicBool = AtomicBool::new(false);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

fn save(target: &str, input: &[u8]) -> PathBuf {
    let dir = fuzz_dir().join("findings").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let path = dir.join(format!("{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

/// Writes out the input being run and stops the process: for what cannot be caught
/// (a hang, memory beyond the hard limit).
pub fn report_and_abort(reason: &str) -> ! {
    if let Ok(current) = CURRENT.try_lock()
        && let Some((target, input)) = current.as_ref()
    {
        let path = save(target, input);
        eprintln!(
            "FINDING in {target}: {reason} (input saved to {})",
            path.display()
        );
    } else {
        eprintln!("FINDING: {reason} (the input could not be saved)");
    }
    std::process::abort();
}

fn start_watchdog(hang: Duration) {
    if WATCHDOG.swap(true, Ordering::SeqCst) {
        return;
    }
    let limit = hang.as_millis() as u64;
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let started = STARTED_MS.load(Ordering::SeqCst);
            if started != 0 && now_ms().saturating_sub(started) > limit {
                report_and_abort(&format!("hang: an input ran longer than {limit} ms"));
            }
        }
    });
}

/// Runs one input; `Ok(parsed)` when the target ran to its end.
pub fn execute(target: &Target, input: &[u8], options: &Options) -> Result<bool, Finding> {
    if let Ok(mut current) = CURRENT.lock() {
        *current = Some((target.name, input.to_vec()));
    }
    let before = alloc::live();
    alloc::reset_peak();
    STARTED_MS.store(now_ms(), Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let elapsed = now_ms().saturating_sub(STARTED_MS.swap(0, Ordering::SeqCst));
    let peak = alloc::peak_since(before);
    let finding = |reason: String| Finding {
        reason,
        input: save(target.name, input),
    };
    match result {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Err(finding(format!("panic: {message}")))
        }
        Ok(_) if elapsed > options.hang.as_millis() as u64 => {
            Err(finding(format!("hang: the input ran {elapsed} ms")))
        }
        Ok(_) if peak > options.memory => Err(finding(format!(
            "memory: the input held {} MiB at its peak",
            peak >> 20
        ))),
        Ok(parsed) => Ok(parsed),
    }
}

/// Inputs kept from mutation at most, besides the corpus.
const KEPT: usize = 512;

/// Replays the corpus and regression inputs of `target`, then mutates for `options.seconds`.
pub fn run(target: &Target, options: &Options) -> Result<Stats, Finding> {
    // One target at a time per process: the watchdog and the saved input are global.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _running = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    start_watchdog(options.hang);
    let started = Instant::now();
    let dir = fuzz_dir();
    let corpus = read_inputs(&dir.join("corpus").join(target.name));
    let regressions = read_inputs(&dir.join("regressions").join(target.name));
    let mut executions = 0u64;
    let mut peak_bytes = 0isize;
    let mut slowest = Duration::ZERO;
    let mut measure = |input: &[u8]| -> Result<bool, Finding> {
        let before = alloc::live();
        let started = Instant::now();
        let parsed = execute(target, input, options)?;
        slowest = slowest.max(started.elapsed());
        peak_bytes = peak_bytes.max(alloc::peak_since(before));
        Ok(parsed)
    };
    for (_, input) in corpus.iter().chain(&regressions) {
        measure(input)?;
        executions += 1;
    }
    let mut pool: Vec<Vec<u8>> = corpus.into_iter().map(|(_, bytes)| bytes).collect();
    if pool.is_empty() {
        pool.push(b"{}".to_vec());
    }
    let seeds = pool.len();
    let mut rng = Rng::new(options.seed);
    let deadline = Duration::from_secs_f64(options.seconds);
    let mutating = Instant::now();
    while mutating.elapsed() < deadline {
        for _ in 0..16 {
            let base = &pool[rng.below(pool.len())];
            let other = &pool[rng.below(pool.len())];
            let input = mutate(&mut rng, base, other, target);
            let parsed = measure(&input)?;
            executions += 1;
            // Inputs the target accepted are kept to mutate further, so that mutations
            // build on valid shapes rather than all failing at the first parse.
            if parsed && rng.below(8) == 0 {
                if pool.len() < seeds + KEPT {
                    pool.push(input);
                } else {
                    let at = seeds + rng.below(KEPT);
                    pool[at] = input;
                }
            }
        }
    }
    Ok(Stats {
        executions,
        corpus: seeds,
        kept: pool.len() - seeds,
        peak_bytes,
        slowest,
        elapsed: started.elapsed(),
    })
}

/// A seed from the clock, for runs not told one.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}
