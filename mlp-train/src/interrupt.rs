//! Ctrl-C (SIGINT) during training. The first one asks the run to stop:
//! the training loop abandons the epoch in progress at the next batch, writes the
//! model and checkpoint of the last finished epoch and says how to resume (see
//! [`crate::train::run_with`]). A second one exits at once with code 130, after
//! removing the temporary files being written.
//!
//! The handler runs on a thread of the `ctrlc` crate, not in signal context, so it
//! may take locks and remove files.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The exit code of a process ended by SIGINT, by the shells' convention (128 + 2).
pub const EXIT_CODE: i32 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler (once per process; later calls do nothing).
///
/// # Errors
/// If the operating system refuses the handler.
pub fn install() -> anyhow::Result<()> {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    ctrlc::set_handler(|| {
        if COUNT.fetch_add(1, Ordering::SeqCst) == 0 {
            REQUESTED.store(true, Ordering::SeqCst);
            eprintln_quiet(
                "mlp-train: interrupted: stopping after this batch and saving (press Ctrl-C again to quit at once)",
            );
        } else {
            crate::fsio::remove_temporaries();
            eprintln_quiet("mlp-train: interrupted twice: quitting without saving");
            std::process::exit(EXIT_CODE);
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))
}

/// The flag the training loop watches (set by the first Ctrl-C).
pub fn flag() -> &'static AtomicBool {
    &REQUESTED
}

/// True once a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// A line on stderr, ignoring a closed or full stderr.
fn eprintln_quiet(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
