//! Writes the `stored_record_decode` seed inputs (one valid value of every stored kind) to
//! `fuzz/corpus/stored_record_decode/`: `cargo run -p holdfast-testkit --example seed_stored`.

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/stored_record_decode");
    std::fs::create_dir_all(&dir).expect("the corpus folder");
    for (name, input) in holdfast_testkit::stored::seed_inputs() {
        std::fs::write(dir.join(&name), input).expect("a seed input writes");
        println!("{name}");
    }
}
