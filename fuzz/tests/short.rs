//! The short fuzz run of `cargo test` (and so of `scripts/test`): each target replays its
//! corpus and every regression input (`fuzz/regressions/<target>/`, inputs of past
//! findings), then runs random mutations for `HEARTH_FUZZ_SECONDS` (default 3) with the
//! seed `HEARTH_FUZZ_SEED` (default: from the clock, printed so a failure can be repeated).

use hearth_fuzz::driver::{Options, clock_seed, run};
use hearth_fuzz::targets::find;

fn short_run(name: &str) {
    let target = find(name).expect("a target of that name");
    let seconds = std::env::var("HEARTH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let seed = std::env::var("HEARTH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(clock_seed);
    println!("{name}: seed {seed}, {seconds} s");
    match run(target, &Options::new(seconds, seed)) {
        Ok(stats) => {
            println!("{name}: {} executions, no finding", stats.executions);
            assert!(stats.corpus > 0, "{name} has no corpus");
        }
        Err(finding) => panic!("{name} (seed {seed}): {finding}"),
    }
}

#[test]
fn canonical_json() {
    short_run("canonical_json");
}

#[test]
fn pdu() {
    short_run("pdu");
}

#[test]
fn auth_rules() {
    short_run("auth_rules");
}

#[test]
fn state_res() {
    short_run("state_res");
}

#[test]
fn sync_filter() {
    short_run("sync_filter");
}

#[test]
fn search_query() {
    short_run("search_query");
}

#[test]
fn media_thumbnail() {
    short_run("media_thumbnail");
}

#[test]
fn sync_ws_frame() {
    short_run("sync_ws_frame");
}

#[test]
fn federation_txn() {
    short_run("federation_txn");
}

#[test]
fn federation_edu() {
    short_run("federation_edu");
}
