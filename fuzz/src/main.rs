//! `hearth-fuzz`: the long form of the fuzz runs (see `spec/reliability.md`, "Fuzzing").
//!
//! ```text
//! hearth-fuzz list
//! hearth-fuzz seeds                                   # rewrite fuzz/corpus/ from real inputs
//! hearth-fuzz run <target|all> [--seconds N] [--seed S]
//! hearth-fuzz replay <target> <file>...               # run saved inputs once
//! ```

use std::process::ExitCode;
use std::time::Instant;

use hearth_fuzz::driver::{self, Options, clock_seed, fuzz_dir};
use hearth_fuzz::targets::{TARGETS, Target, find};

fn usage() -> ExitCode {
    eprintln!(
        "usage: hearth-fuzz list | seeds | run <target|all> [--seconds N] [--seed S] | replay <target> <file>..."
    );
    ExitCode::from(2)
}

fn targets(name: &str) -> Option<Vec<&'static Target>> {
    if name == "all" {
        Some(TARGETS.iter().collect())
    } else {
        find(name).map(|t| vec![t])
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for t in TARGETS {
                println!("{}", t.name);
            }
            ExitCode::SUCCESS
        }
        Some("seeds") => match hearth_fuzz::seeds::write_all(&fuzz_dir().join("corpus")) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the corpus: {e}");
                ExitCode::FAILURE
            }
        },
        Some("run") => {
            let Some(targets) = args.get(1).and_then(|n| targets(n)) else {
                return usage();
            };
            let mut seconds = 60.0;
            let mut seed = clock_seed();
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let value = rest.next().map(String::as_str);
                match (flag.as_str(), value) {
                    ("--seconds", Some(v)) if v.parse::<f64>().is_ok() => {
                        seconds = v.parse().unwrap_or(60.0)
                    }
                    ("--seed", Some(v)) if v.parse::<u64>().is_ok() => {
                        seed = v.parse().unwrap_or(1)
                    }
                    _ => return usage(),
                }
            }
            let mut failed = false;
            for target in targets {
                println!("{}: seed {seed}, {seconds} s", target.name);
                match driver::run(target, &Options::new(seconds, seed)) {
                    Ok(stats) => {
                        let secs = stats.elapsed.as_secs_f64();
                        println!(
                            "{}: {} executions in {secs:.0} s ({:.0}/s), {} seeds, {} mutants kept, peak {} KiB and slowest {} ms per input, no finding",
                            target.name,
                            stats.executions,
                            stats.executions as f64 / secs,
                            stats.corpus,
                            stats.kept,
                            stats.peak_bytes >> 10,
                            stats.slowest.as_millis(),
                        );
                    }
                    Err(finding) => {
                        println!("{}: FINDING {finding}", target.name);
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Some("replay") => {
            let Some(target) = args.get(1).and_then(|n| find(n)) else {
                return usage();
            };
            let options = Options::new(0.0, 0);
            let mut failed = false;
            for file in &args[2..] {
                let Ok(input) = std::fs::read(file) else {
                    eprintln!("cannot read {file}");
                    return ExitCode::FAILURE;
                };
                let started = Instant::now();
                match driver::execute(target, &input, &options) {
                    Ok(parsed) => println!(
                        "{file}: ok (parsed: {parsed}) in {} ms",
                        started.elapsed().as_millis()
                    ),
                    Err(finding) => {
                        println!("{file}: FINDING {finding}");
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => usage(),
    }
}
