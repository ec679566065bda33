//! `mlp-train`: the command-line trainer. All logic is in the library; this only
//! parses arguments and turns an error into a one-line message and exit code 1.

use clap::Parser;

fn main() {
    let cli = mlp_train::cli::Cli::parse();
    if let Err(e) = mlp_train::cli::run(cli) {
        let message = mlp_train::cli::error_message(&e);
        eprintln!("mlp-train: error: {message}");
        std::process::exit(1);
    }
}
