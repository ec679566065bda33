//! Predicts the embedded feature vectors with a tabular f32 model and a tabular int8
//! model (format version 3, each with its stored standardization), both embedded in the
//! firmware and read in place; prints every logit's bits for the host to compare.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use mlp_firmware::Aligned;

mlp_firmware::handlers!();

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/tabular-model.mlp"
)));

static INT8_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/tabular-int8-model.mlp"
)));

#[entry]
fn main() -> ! {
    mlp_firmware::run_features(&MODEL.0, &INT8_MODEL.0)
}
