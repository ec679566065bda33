//! `mlp_embedded::Int8Model::load` (int8 models) on arbitrary bytes, for several
//! firmware shapes: whatever loads predicts without panicking, with the same int32
//! logits as the core's `forward_one_i8` and from an aligned or misaligned copy, the f32
//! loader refuses it, and it re-encodes to the same model (the same bytes when the file
//! was canonical).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlp_fuzz::check_embedded_load_int8(data));
