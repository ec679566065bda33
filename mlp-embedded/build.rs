//! Turns on the `mlp_dsp` cfg for targets whose cores have the Armv7E-M DSP extension
//! (`thumbv7em-*`: Cortex-M4 and Cortex-M7), where the int8 kernel uses `SMLAD`.
//!
//! Stable Rust has no `target_feature = "dsp"` cfg, and `thumbv7em` and `thumbv7m`
//! (Cortex-M3, no DSP) share every other cfg, so the target's name decides.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(mlp_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo::rustc-cfg=mlp_dsp");
    }
}
