//! `mlp_embedded::Model::load` (f32 models) on arbitrary bytes, for several firmware
//! shapes: whatever loads predicts without panicking, the same bits from pixels or
//! values and from an aligned or misaligned copy, and re-encodes to the same model.
//!
//! An int8 target is the same with the int8 loader in `mlp_fuzz` (a copy of
//! `check_embedded_load_f32` calling it) and a seed directory of int8 models.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlp_fuzz::check_embedded_load_f32(data));
