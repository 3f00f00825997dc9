//! Benchmarks of the fedtwin federation engine.
//!
//! The benchmarks themselves live under `benches/` (run them with
//! `cargo bench -p fedtwin-benches`); this library is the home of scenario code shared between
//! them.
