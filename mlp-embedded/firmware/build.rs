//! Puts the board's `memory.x` on the linker's search path, links binaries with cortex-m-rt's
//! `link.x`, and stages the model, test images and expected classes the firmware
//! embeds, plus the layer sizes it is built for.
//!
//! Inputs (environment variables, all optional):
//! - `MLP_MODEL`: model file (mlp-core format); default `target/assets/model.mlp`.
//! - `MLP_IMAGES`: `n × inputs` raw bytes, one byte per pixel; default `target/assets/images.bin`.
//! - `MLP_EXPECTED`: `n` bytes, the class the host predicts for each image; default
//!   `target/assets/expected.bin`.
//! - `MLP_LAYERS`: the layer sizes the firmware is built for, comma separated;
//!   default `784,100,200,10`. A model with other sizes is refused at load time.
//! - `MLP_BOARD`: the memory map, `boards/<board>/memory.x`: `mps2` (default) or `microbit`.
//! - `MLP_INT8_MODEL`, `MLP_INT8_IMAGES`, `MLP_INT8_EXPECTED`: the same three for the
//!   int8 binaries (`predict_int8`, and `panic_never`'s int8 half); defaults in
//!   `target/assets/int8/`. The int8 model has the same layer sizes (`MLP_LAYERS`).
//!
//! - `MLP_TABULAR_LAYERS`, `MLP_TABULAR_MODEL`, `MLP_TABULAR_INT8_MODEL`,
//!   `MLP_TABULAR_FEATURES`: the `predict_features` binary's layer sizes (default
//!   `32,64,32,4`, the model `device_parity` writes and `scripts/firmware.sh bench`
//!   measures), its f32 and int8 models of feature vectors (format version 3, with a
//!   stored input transform) and its feature vectors (`n × inputs` little-endian
//!   `f32`); defaults in `target/assets/tabular/`.
//!
//! The `device_parity` test (`tests/tests/device_parity.rs`) writes the f32 and tabular
//! defaults, `device_parity_int8` the int8 ones.
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));

    // The board's memory map, boards/<board>/memory.x: mps2 (QEMU mps2-an385/an386) by
    // default, `MLP_BOARD=microbit` for the micro:bit (a real Cortex-M0 with 256 KB of
    // flash and 16 KB of RAM). No memory.x in this folder itself: the linker would find
    // it first, whatever the board.
    println!("cargo:rerun-if-env-changed=MLP_BOARD");
    let board = env::var("MLP_BOARD").unwrap_or_else(|_| "mps2".to_owned());
    let memory = manifest.join("boards").join(&board).join("memory.x");
    assert!(
        memory.is_file(),
        "MLP_BOARD={board}: no {}",
        memory.display()
    );
    fs::copy(&memory, out.join("memory.x")).expect("copy the memory map");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", memory.display());
    let target = env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumb") {
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
    }

    let assets = manifest.join("target").join("assets");
    let layers = env::var("MLP_LAYERS").unwrap_or_else(|_| "784,100,200,10".to_owned());
    println!("cargo:rerun-if-env-changed=MLP_LAYERS");
    let sizes: Vec<u32> = layers
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("MLP_LAYERS: {s:?} is not a size"))
        })
        .collect();
    assert!(sizes.len() >= 2, "MLP_LAYERS needs at least two sizes");
    let inputs = sizes[0] as usize;
    let outputs = *sizes.last().unwrap() as usize;
    let width = sizes[1..].iter().copied().max().unwrap() as usize;

    let model = stage(&out, &assets, "MLP_MODEL", "model.mlp", "model.mlp");
    let images = stage(&out, &assets, "MLP_IMAGES", "images.bin", "images.bin");
    let expected = stage(
        &out,
        &assets,
        "MLP_EXPECTED",
        "expected.bin",
        "expected.bin",
    );
    if model.is_empty() {
        println!(
            "cargo:warning=no model staged: the `predict` binary will report a truncated model"
        );
    }
    assert!(
        images.len().is_multiple_of(inputs),
        "images: {} bytes is not a whole number of {inputs}-byte images",
        images.len()
    );
    let count = images.len() / inputs;
    assert!(
        expected.len() == count,
        "expected: {} classes for {count} images",
        expected.len()
    );

    let int8 = assets.join("int8");
    stage(&out, &int8, "MLP_INT8_MODEL", "model.mlp", "int8-model.mlp");
    let int8_images = stage(
        &out,
        &int8,
        "MLP_INT8_IMAGES",
        "images.bin",
        "int8-images.bin",
    );
    let int8_expected = stage(
        &out,
        &int8,
        "MLP_INT8_EXPECTED",
        "expected.bin",
        "int8-expected.bin",
    );
    assert!(
        int8_images.len().is_multiple_of(inputs),
        "int8 images: {} bytes is not a whole number of {inputs}-byte images",
        int8_images.len()
    );
    let int8_count = int8_images.len() / inputs;
    assert!(
        int8_expected.len() == int8_count,
        "int8 expected: {} classes for {int8_count} images",
        int8_expected.len()
    );

    let tabular = assets.join("tabular");
    let tabular_layers = env::var("MLP_TABULAR_LAYERS").unwrap_or_else(|_| "32,64,32,4".to_owned());
    println!("cargo:rerun-if-env-changed=MLP_TABULAR_LAYERS");
    let tabular_sizes: Vec<u32> = tabular_layers
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("MLP_TABULAR_LAYERS: {s:?} is not a size"))
        })
        .collect();
    assert!(
        tabular_sizes.len() >= 2,
        "MLP_TABULAR_LAYERS needs at least two sizes"
    );
    stage(
        &out,
        &tabular,
        "MLP_TABULAR_MODEL",
        "model.mlp",
        "tabular-model.mlp",
    );
    stage(
        &out,
        &tabular,
        "MLP_TABULAR_INT8_MODEL",
        "int8-model.mlp",
        "tabular-int8-model.mlp",
    );
    let tabular_features = stage(
        &out,
        &tabular,
        "MLP_TABULAR_FEATURES",
        "features.bin",
        "tabular-features.bin",
    );
    let tabular_inputs = tabular_sizes[0] as usize;
    assert!(
        tabular_features.len().is_multiple_of(4 * tabular_inputs),
        "tabular features: {} bytes is not a whole number of {tabular_inputs}-feature vectors",
        tabular_features.len()
    );

    let config = format!(
        "/// Layer sizes this firmware is built for (`MLP_LAYERS`).\n\
         pub const LAYER_SIZES: [u32; {n}] = {sizes:?};\n\
         /// Inputs of the first layer: bytes per image.\n\
         pub const INPUTS: usize = {inputs};\n\
         /// Outputs of the last layer: classes.\n\
         pub const OUTPUTS: usize = {outputs};\n\
         /// The widest layer output: the length of each activation buffer.\n\
         pub const WIDTH: usize = {width};\n\
         /// Test images embedded.\n\
         pub const IMAGE_COUNT: usize = {count};\n\
         /// Test images embedded for the int8 binaries.\n\
         pub const INT8_IMAGE_COUNT: usize = {int8_count};\n\
         /// Layer sizes of the `predict_features` binary (`MLP_TABULAR_LAYERS`).\n\
         pub const TABULAR_LAYER_SIZES: [u32; {tn}] = {tabular_sizes:?};\n\
         /// Features of the tabular model.\n\
         pub const TABULAR_INPUTS: usize = {tabular_inputs};\n\
         /// Classes of the tabular model.\n\
         pub const TABULAR_OUTPUTS: usize = {tabular_outputs};\n\
         /// The tabular model's widest layer output.\n\
         pub const TABULAR_WIDTH: usize = {tabular_width};\n",
        n = sizes.len(),
        tn = tabular_sizes.len(),
        tabular_outputs = tabular_sizes.last().copied().unwrap_or(0),
        tabular_width = tabular_sizes[1..].iter().copied().max().unwrap_or(0),
    );
    fs::write(out.join("config.rs"), config).expect("write config.rs");
}

/// Copies the file named by `var` (or `assets/default_name`) into `out/staged_name`
/// and returns its bytes; a missing default becomes an empty file.
fn stage(out: &Path, assets: &Path, var: &str, default_name: &str, staged_name: &str) -> Vec<u8> {
    println!("cargo:rerun-if-env-changed={var}");
    let source = env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| assets.join(default_name));
    println!("cargo:rerun-if-changed={}", source.display());
    let bytes = match fs::read(&source) {
        Ok(bytes) => bytes,
        Err(_) if env::var_os(var).is_none() => Vec::new(),
        Err(error) => panic!("{var}={}: {error}", source.display()),
    };
    fs::write(out.join(staged_name), &bytes).expect("stage asset");
    bytes
}
