//! The panic-never check: loads the embedded f32 model and the embedded int8 model and
//! predicts every embedded image with each, as bytes and as feature vectors (the input
//! transform and, for int8, the input quantization), with a panic handler that calls a function
//! that exists nowhere. The release build
//! links only if the optimizer removed every panic path from loading and predicting;
//! a panic path that cannot be proven dead fails the build, naming this function.
//!
//! Build: `cargo build --release --features panic-never --bin panic_never`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use mlp_embedded::{Int8Scratch, Scratch};
use mlp_firmware::config::{INPUTS, LAYER_SIZES};
use mlp_firmware::{
    Aligned, FirmwareInt8Model, FirmwareModel, EXPECTED, IMAGES, INT8_EXPECTED, INT8_IMAGES,
};

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.mlp")));
static INT8_MODEL: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/int8-model.mlp")));

#[entry]
fn main() -> ! {
    let mut all_match = false;
    if let Ok(model) = FirmwareModel::load_expecting(&MODEL.0, &LAYER_SIZES) {
        let mut scratch = Scratch::new();
        all_match = true;
        for (image, &expected) in IMAGES.0.as_chunks::<INPUTS>().0.iter().zip(EXPECTED) {
            let prediction = model.predict_pixels(image, &mut scratch);
            all_match &= prediction.class == usize::from(expected);
            let features = image.map(f32::from);
            all_match &= model.predict_features(&features, &mut scratch).class == prediction.class;
        }
    }
    let mut int8_match = false;
    if let Ok(model) = FirmwareInt8Model::load_expecting(&INT8_MODEL.0, &LAYER_SIZES) {
        let mut scratch = Int8Scratch::new();
        int8_match = true;
        let images = INT8_IMAGES.0.as_chunks::<INPUTS>().0;
        for (image, &expected) in images.iter().zip(INT8_EXPECTED) {
            let prediction = model.predict_pixels(image, &mut scratch);
            int8_match &= prediction.class == usize::from(expected);
            let features = image.map(f32::from);
            int8_match &= model.predict_features(&features, &mut scratch).class == prediction.class;
        }
    }
    mlp_firmware::exit(all_match && int8_match)
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
