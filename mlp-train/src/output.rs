//! Standard output that never panics: what the commands print goes through
//! [`write_str`] (or the `outln!` and `out!` macros) instead of `println!`, which
//! panics when stdout is a closed pipe (`mlp-train show | head`) or a full device.
//!
//! A closed pipe is not an error: the reader has what it wanted, so the rest of the
//! output is dropped and the command goes on (training keeps training and writes its
//! files). Any other write error (`/dev/full`: no space left) is remembered, the rest
//! of the output is dropped, and [`check`] turns it into the command's one-line error
//! at the end.

use std::io::{self, Write};
use std::sync::Mutex;

/// What happened to standard output so far.
#[derive(Debug)]
struct State {
    /// Output is dropped from now on (the pipe closed or a write failed).
    closed: bool,
    /// The first write error other than a closed pipe.
    error: Option<io::Error>,
}

static STATE: Mutex<State> = Mutex::new(State {
    closed: false,
    error: None,
});

/// Writes `text` to standard output and flushes it; after a closed pipe or an error,
/// does nothing.
pub fn write_str(text: &str) {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if state.closed {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        state.closed = true;
        if e.kind() != io::ErrorKind::BrokenPipe {
            state.error = Some(e);
        }
    }
}

/// [`write_str`] of formatted text (what `out!` and `outln!` call).
pub fn write_fmt(args: std::fmt::Arguments<'_>) {
    match args.as_str() {
        Some(text) => write_str(text),
        None => write_str(&args.to_string()),
    }
}

/// True once output is being dropped (the reader closed the pipe, or a write failed).
pub fn is_closed() -> bool {
    STATE.lock().unwrap_or_else(|e| e.into_inner()).closed
}

/// The first write error other than a closed pipe, as the command's error.
///
/// # Errors
/// `standard output: cannot write: …` when a write failed.
pub fn check() -> anyhow::Result<()> {
    let state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    match &state.error {
        Some(e) => anyhow::bail!("standard output: cannot write: {e}"),
        None => Ok(()),
    }
}

/// `print!` through [`write_fmt`]: never panics.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_fmt(format_args!($($arg)*))
    };
}

/// `println!` through [`write_fmt`]: never panics.
macro_rules! outln {
    () => {
        $crate::output::write_str("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write_str(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};
