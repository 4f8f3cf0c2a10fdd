//! Holdfast side by side with samod and automerge-repo, and with the machine's own limits
//! (issue 6). Every figure is measured in the same run as the peer or baseline it is
//! divided by.
//!
//! ```sh
//! bash benches/compare/setup.sh                      # once: automerge-repo for node
//! cargo build --release -p holdfast-relay -p holdfast-benches
//! target/release/compare --out compare.json          # everything (about half an hour)
//! target/release/compare --quick --only holdfast,samod   # a smoke run
//! ```
//!
//! See `holdfast_benches::compare` for how bytes, time and memory are measured.

fn main() -> anyhow::Result<()> {
    holdfast_benches::compare::main()
}
