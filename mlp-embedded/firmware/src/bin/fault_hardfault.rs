//! Checks the HardFault handler: executes a permanently undefined instruction, so
//! QEMU must exit with failure instead of hanging.
#![no_std]
#![no_main]

use cortex_m_rt::entry;

mlp_firmware::handlers!();

#[entry]
fn main() -> ! {
    cortex_m::asm::udf()
}
