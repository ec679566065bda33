//! `mlp_embedded::Model::load` (f32 models) on arbitrary bytes, for several firmware
//! shapes: whatever loads predicts without panicking, the same bits from pixels or
//! values and from an aligned or misaligned copy, and re-encodes to the same model.
//!
//! `embedded_load_int8` is its twin for int8 models.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mlp_fuzz::check_embedded_load_f32(data));
