//! Fuzzing for Hearth: targets that run the server's own parsing code on arbitrary bytes
//! (`targets`), a seeded mutation driver that runs on stable Rust (`driver`, used by the
//! short run in the tests and by `hearth-fuzz run` for long runs), and the seed corpus
//! generator (`seeds`). See `spec/reliability.md`, "Fuzzing".

pub mod alloc;
pub mod driver;
pub mod mutate;
pub mod seeds;
pub mod targets;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;
