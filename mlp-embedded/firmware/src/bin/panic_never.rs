//! The panic-never check: loads the embedded model and predicts every embedded image,
//! with a panic handler that calls a function that exists nowhere. The release build
//! links only if the optimizer removed every panic path from loading and predicting;
//! a panic path that cannot be proven dead fails the build, naming this function.
//!
//! Build: `cargo build --release --features panic-never --bin panic_never`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use mlp_embedded::Scratch;
use mlp_firmware::config::{INPUTS, LAYER_SIZES};
use mlp_firmware::{Aligned, FirmwareModel, EXPECTED, IMAGES};

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.mlp")));

#[entry]
fn main() -> ! {
    let mut all_match = false;
    if let Ok(model) = FirmwareModel::load_expecting(&MODEL.0, &LAYER_SIZES) {
        let mut scratch = Scratch::new();
        all_match = true;
        for (image, &expected) in IMAGES.0.as_chunks::<INPUTS>().0.iter().zip(EXPECTED) {
            let prediction = model.predict_pixels(image, &mut scratch);
            all_match &= prediction.class == usize::from(expected);
        }
    }
    mlp_firmware::exit(all_match)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    extern "Rust" {
        // Defined nowhere: referencing it is a link error.
        fn a_panic_path_is_left_in_loading_or_predicting() -> !;
    }
    // SAFETY: never runs: the binary links only if this call was optimized away.
    unsafe { a_panic_path_is_left_in_loading_or_predicting() }
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_: &cortex_m_rt::ExceptionFrame) -> ! {
    mlp_firmware::exit(false)
}
