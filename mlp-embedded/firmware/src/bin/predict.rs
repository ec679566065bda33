//! Predicts the embedded test images with the model embedded in the firmware
//! (`include_bytes!`, kept 4-byte aligned in flash and read in place); exits with
//! success only if every prediction equals the host's.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use mlp_firmware::Aligned;

mlp_firmware::handlers!();

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.mlp")));

#[entry]
fn main() -> ! {
    mlp_firmware::run(&MODEL.0)
}
