//! Notices when the runtime stops running tasks for a while, and logs a warning that
//! says whether the server was busy meanwhile (CPU-bound work, or a task holding its
//! thread) or not running at all (its threads blocked, or the machine gave the CPU to
//! something else). A request or delivery that took long for no reason of its own can
//! then be told apart from one that waited behind the whole server.

use std::time::{Duration, Instant};

/// How often the monitor wakes: 20 times a second costs nothing measurable.
const TICK: Duration = Duration::from_millis(50);

/// A wake this much later than due is a stall worth a line in the log.
const STALL: Duration = Duration::from_millis(100);

/// Runs until `stop` resolves, logging each stall.
pub async fn watch(stop: impl std::future::Future<Output = ()>) {
    watch_with(stop, |stall| {
        tracing::warn!(
            late_ms = stall.late.as_millis() as u64,
            server_cpu_ms = stall.cpu.as_millis() as u64,
            preempted = stall.preempted,
            "the runtime ran no task for {} ms; the server used {} ms of CPU meanwhile",
            stall.late.as_millis(),
            stall.cpu.as_millis()
        );
    })
    .await;
}

/// A wake of the monitor that came [`STALL`] or more after it was due.
#[derive(Debug)]
struct Stall {
    /// How much later than due.
    late: Duration,
    /// The process's CPU time since the wake before, all threads.
    cpu: Duration,
    /// Times a thread of the process was taken off its CPU meanwhile.
    preempted: i64,
}

async fn watch_with(stop: impl std::future::Future<Output = ()>, mut report: impl FnMut(Stall)) {
    tokio::pin!(stop);
    let mut before = Usage::now();
    loop {
        let due = Instant::now() + TICK;
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep_until(due.into()) => {}
        }
        let late = Instant::now().saturating_duration_since(due);
        let usage = Usage::now();
        if late >= STALL
            && let (Some(now), Some(then)) = (usage, before)
        {
            let (cpu, preempted) = now.since(&then);
            report(Stall {
                late,
                cpu,
                preempted,
            });
        }
        before = usage;
    }
}

/// The process's CPU time and involuntary context switches so far.
#[derive(Clone, Copy)]
struct Usage {
    cpu: Duration,
    preempted: i64,
}

impl Usage {
    fn now() -> Option<Self> {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage writes a whole rusage into the pointer it is given.
        let usage = unsafe {
            if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
                return None;
            }
            usage.assume_init()
        };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Some(Self {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            preempted: usage.ru_nivcsw,
        })
    }

    /// CPU time and involuntary switches between `earlier` and this.
    fn since(&self, earlier: &Self) -> (Duration, i64) {
        (
            self.cpu.saturating_sub(earlier.cpu),
            self.preempted - earlier.preempted,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_the_cpu_time_spent_between_two_readings() {
        let before = Usage::now().unwrap();
        let started = Instant::now();
        let mut x = 0u64;
        // However busy the machine, 20 ms of CPU come within 10 s.
        while Usage::now().unwrap().since(&before).0 < Duration::from_millis(20) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no CPU time counted"
            );
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
    }

    #[test]
    fn a_thread_held_by_a_task_is_reported_as_a_stall_without_cpu() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let stalls = std::sync::Mutex::new(Vec::new());
        runtime.block_on(async {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let watching = watch_with(
                async {
                    let _ = stopped.await;
                },
                |stall| stalls.lock().unwrap().push(stall),
            );
            let holding = async {
                tokio::time::sleep(TICK / 2).await;
                // Blocks the runtime's only thread, asleep: no task runs, no CPU is used.
                std::thread::sleep(Duration::from_millis(300));
                tokio::time::sleep(TICK * 2).await;
                let _ = stop.send(());
            };
            tokio::join!(watching, holding);
        });
        let stalls = stalls.into_inner().unwrap();
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        assert!(stalls[0].late >= Duration::from_millis(200), "{stalls:?}");
        assert!(stalls[0].cpu < Duration::from_millis(150), "{stalls:?}");
    }
}
