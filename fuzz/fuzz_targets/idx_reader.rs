//! The trainer's IDX reader (`mlp_data::idx`) on arbitrary files, plain or gzip: no
//! panic, errors name the file, and what is read re-encodes to the same bytes.
#![no_main]

use std::sync::OnceLock;

static FILE: OnceLock<mlp_fuzz::ScratchFile> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let file = FILE.get_or_init(|| mlp_fuzz::ScratchFile::new("input.idx"));
    mlp_fuzz::check_idx(file, data);
});
