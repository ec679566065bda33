//! Predicts the embedded int8 test images with the int8 model embedded in the firmware
//! (`include_bytes!`, read in place from flash) using integer arithmetic only; exits
//! with success only if every prediction equals the host's. Fits a micro:bit (256 KB of
//! flash, 16 KB of RAM) with the 784-100-200-10 walkthrough model.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use mlp_firmware::Aligned;

mlp_firmware::handlers!();

static MODEL: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/int8-model.mlp")));

#[entry]
fn main() -> ! {
    mlp_firmware::run_int8(&MODEL.0)
}
