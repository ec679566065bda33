//! Checks the panic handler: panics on purpose, so QEMU must exit with failure.
#![no_std]
#![no_main]

use cortex_m_rt::entry;

mlp_firmware::handlers!();

#[entry]
fn main() -> ! {
    // Read through a volatile so the panic cannot be proven at compile time.
    let limit = core::hint::black_box(0u32);
    if limit == 0 {
        panic!("deliberate panic");
    }
    mlp_firmware::exit(true)
}
