//! Writes the store of `compare`'s workload 6 (100,000 records unless told), to profile
//! its cold open: `cargo run --release -p holdfast-benches --example cold_store -- PATH [N]`,
//! then `compare child cold-open --db PATH` under `perf record`.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: cold_store PATH [N]"))?;
    let n = args.next().map_or(Ok(100_000), |n| n.parse())?;
    holdfast_benches::compare::local::build_store(std::path::Path::new(&path), n)
}
