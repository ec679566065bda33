//! Predicts the embedded test images with a model flashed on its own, at the start of
//! the `MODEL` region of the board's `memory.x` (`boards/mps2/memory.x`): a retrained model is flashed without rebuilding
//! this firmware. In QEMU: `-device loader,file=model.mlp,addr=0x00300000`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;

mlp_firmware::handlers!();

extern "C" {
    // Defined in memory.x.
    static _model_region_start: u8;
    static _model_region_end: u8;
}

#[entry]
fn main() -> ! {
    let start = &raw const _model_region_start;
    let len = &raw const _model_region_end as usize - start as usize;
    // SAFETY: memory.x reserves this flash region for the model; nothing in the
    // program writes it, so it is valid, immutable memory for the whole run.
    let region: &'static [u8] = unsafe { core::slice::from_raw_parts(start, len) };
    match mlp_embedded::model_in_region(region) {
        Ok(model) => mlp_firmware::run(model),
        Err(error) => {
            mlp_firmware::hprintln!("load error: {}", error);
            mlp_firmware::exit(false)
        }
    }
}
