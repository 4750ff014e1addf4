//! Developer tools of the Loja workspace, not shipped: the demo store
//! (`loja-demo`, [`demo`]) and the benchmarks of docs/benchmarks.md
//! (`src/bin/*-bench.rs`: pos-, sync-, intake-, apply-, feed-, omni-bench). They
//! live here so that the store binary, `lojad`, links neither the reference
//! central nor the benches' crates.

pub mod demo;
