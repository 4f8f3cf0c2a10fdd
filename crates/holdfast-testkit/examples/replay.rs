//! Runs one target on one input file, for a failing input found by the fuzzer or by the
//! stable test: `cargo run -p holdfast-testkit --example replay -- TARGET FILE`
//! (`HOLDFAST_FUZZ_TRACE=1` makes `merge_convergence` print what the input does).

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(name), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: replay TARGET FILE");
        std::process::exit(2);
    };
    let Some((_, target)) = holdfast_testkit::TARGETS.iter().find(|(n, _)| *n == name) else {
        eprintln!("no target {name}");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).expect("the input file reads");
    target(&data);
    println!("{name} holds on {path}");
}
