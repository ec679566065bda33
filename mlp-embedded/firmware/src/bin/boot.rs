//! Smallest check that the runtime works: boots, prints over semihosting, exits 0.
#![no_std]
#![no_main]

use cortex_m_rt::entry;

mlp_firmware::handlers!();

#[entry]
fn main() -> ! {
    cortex_m_semihosting::hprintln!("boot: ok");
    mlp_firmware::exit(true)
}
