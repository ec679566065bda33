//! `mlp-train`: the command-line trainer. All logic is in the library; this only
//! parses arguments and turns an error into a one-line message and an exit code (1,
//! or 130 after Ctrl-C).

use std::io::Write;

use clap::Parser;

fn main() {
    let cli = mlp_train::cli::Cli::parse();
    let result = mlp_train::cli::run(cli).and_then(|()| mlp_train::output::check());
    if let Err(e) = result {
        let message = mlp_train::cli::error_message(&e).replace('\n', " ");
        // A closed or full stderr is no reason to panic.
        let _ = writeln!(std::io::stderr(), "mlp-train: error: {message}");
        std::process::exit(mlp_train::cli::exit_code(&e));
    }
}
