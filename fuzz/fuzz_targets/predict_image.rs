//! The image path of `mlp-train predict`: an arbitrary file decoded as PNG or PGM,
//! brought to 28×28 and run through a 784-input model; and the 28×28 step alone on a raw
//! grey image made from the bytes. No panic; the inputs are 784 values in [0, 1].
#![no_main]

use std::sync::OnceLock;

static STATE: OnceLock<(mlp_fuzz::ScratchFile, mlp_fuzz::DigitModel)> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (file, model) = STATE.get_or_init(|| {
        let model = mlp_fuzz::DigitModel::zeroed(&[784, 16, 10]);
        (mlp_fuzz::ScratchFile::new("input.img"), model)
    });
    mlp_fuzz::check_image(file, model, data);
});
