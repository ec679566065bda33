// The model shape a board's firmware is built for, shared by every board crate's
// build.rs through `include!` (a build script cannot depend on the `mlp-board-common`
// library, which is built for the board's target, not the host).
//
// `MLP_LAYERS` has the meaning it has for `mlp-embedded/firmware/build.rs`: the layer
// sizes, comma separated, inputs first and classes last; default `784,100,200,10`, the
// walkthrough's network.

/// The layer sizes of the default build: a firmware for 28×28 images of 10 classes.
const DEFAULT_LAYERS: &str = "784,100,200,10";

/// Reads `MLP_LAYERS` and writes `shape.rs` into `out`: the constants `INPUTS` (the
/// first size), `CLASSES` (the last) and `WIDTH`, the length of the activation
/// buffers: the widest layer output, and never less than `board_width`, the board's
/// usual capacity. The floor keeps what a firmware has always offered: a model of the
/// same inputs and classes but other hidden sizes (up to that width) runs without a new
/// firmware, and the default build is what it was before `MLP_LAYERS` was read.
///
/// A build with `MLP_LAYERS` set into the target folder every board crate shares
/// (`boards/target`) replaces the default ELF that `mlp-train board --qemu` runs when
/// no `--firmware` is given: it is warned about, and the boards' READMEs build such a
/// firmware with its own `CARGO_TARGET_DIR`.
fn write_shape(out: &std::path::Path, manifest: &std::path::Path, board_width: usize) {
    println!("cargo:rerun-if-env-changed=MLP_LAYERS");
    let given = std::env::var("MLP_LAYERS").ok();
    let layers = given.as_deref().unwrap_or(DEFAULT_LAYERS);
    let sizes: Vec<usize> = layers
        .split(',')
        .map(|s| match s.trim().parse() {
            Ok(size) if size > 0 => size,
            _ => panic!("MLP_LAYERS={layers}: {s:?} is not a layer size (a whole number above 0)"),
        })
        .collect();
    assert!(
        sizes.len() >= 2,
        "MLP_LAYERS={layers}: give at least two sizes, the inputs and the classes"
    );
    let inputs = sizes[0];
    let classes = sizes[sizes.len() - 1];
    let widest = sizes[1..].iter().copied().max().unwrap_or(classes);
    let width = widest.max(board_width);
    if let Some(given) = &given {
        let shared = manifest.join("../target");
        let in_shared = match (out.canonicalize(), shared.canonicalize()) {
            (Ok(out), Ok(shared)) => out.starts_with(shared),
            _ => false,
        };
        if in_shared {
            println!(
                "cargo:warning=MLP_LAYERS={given}: this firmware replaces the default one in \
                 boards/target, which `mlp-train board --qemu` runs without --firmware; \
                 set CARGO_TARGET_DIR to build it elsewhere"
            );
        }
    }
    let shape = format!(
        "/// Inputs of the models this firmware serves (`MLP_LAYERS`, first size).\n\
         const INPUTS: usize = {inputs};\n\
         /// Classes of the models this firmware serves (`MLP_LAYERS`, last size).\n\
         const CLASSES: usize = {classes};\n\
         /// The activation buffers' length: the widest layer of `MLP_LAYERS` ({widest}), \
         at least the board's {board_width}.\n\
         const WIDTH: usize = {width};\n"
    );
    std::fs::write(out.join("shape.rs"), shape).expect("write shape.rs");
}
