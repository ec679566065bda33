//! `mlp_core::format::ModelView::decode` on arbitrary bytes: agrees with the spec's
//! reference reader, a decoded model runs, and it re-encodes to the same model (the same
//! bytes when the file is canonical). See `fuzz/src/lib.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlp_fuzz::check_model_file(data));
