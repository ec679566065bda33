//! Puts this board's `memory.x` on the linker's search path, and writes the model shape
//! the firmware is built for (`MLP_LAYERS`, see `../common/shape.rs`) into `OUT_DIR`.
use std::{env, fs, path::PathBuf};

include!("../common/shape.rs");

/// The activation buffers' length when `MLP_LAYERS` asks for no wider layer.
const BOARD_WIDTH: usize = 256;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    write_shape(&out, &manifest, BOARD_WIDTH);
}
