//! Desktop trainer for `mlp-core` models (being built; see the trainer issue).

fn main() {
    eprintln!("mlp-train: not implemented yet");
    std::process::exit(2);
}
