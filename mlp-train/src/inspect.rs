//! The `inspect` command: what a model file holds and what a device needs to run it.
//!
//! - flash = the model file's size (the firmware reads the weights in place);
//! - RAM = the device's own account, `mlp_embedded::MemoryNeeds` (the one the firmware
//!   prints): the activation buffers `predict_pixels` works in, `8 × widest output`
//!   bytes for f32 (two ping-pong `f32` buffers, `Scratch`), `6 × widest output` for
//!   int8 (two byte buffers and the int32 accumulators, `Int8Scratch`); plus the stack
//!   the Dense kernel gathers its non-zero inputs on (`8 × kernel::CHUNK` bytes for
//!   f32; `12 × (kernel_i8::PAIRS + 2)` for int8, the Cortex-M4's `SMLAD` kernel: the
//!   Cortex-M0's needs none). The input is not counted:
//!   `predict_pixels` reads the caller's pixel bytes where they lie (in flash, or a
//!   frame buffer) and converts only the non-zero ones as it uses them. Call frames and
//!   the firmware's own data are measured in QEMU by `scripts/firmware.sh bench`;
//! - MACs per inference = `Σ inputs × outputs` over the layers.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use mlp_core::format::ModelView;

/// Figures about a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Layer widths, input first.
    pub sizes: Vec<usize>,
    /// How parameters are stored (`F32`, `Int8`).
    pub element_type: String,
    /// Weights and biases.
    pub parameters: usize,
    /// Model file size in bytes (= flash needed).
    pub file_bytes: usize,
    /// RAM for the activations, as `mlp_embedded::MemoryNeeds` counts it.
    pub ram_bytes: usize,
    /// Stack the device's Dense kernel gathers non-zero inputs on.
    pub kernel_stack_bytes: usize,
    /// Multiply-accumulates per inference.
    pub macs: usize,
    /// The file's format version.
    pub version: u16,
    /// What the first layer is given (`pixels (x / 255)`, `standardized ...`).
    pub input: String,
    /// An int8 model's input scale and zero point.
    pub input_quantization: Option<(f32, i32)>,
    /// The class names, if the file has them.
    pub class_names: Option<Vec<String>>,
}

/// Reads the figures of a model file.
pub fn inspect(path: &Path) -> Result<ModelInfo> {
    let bytes = crate::model::read_model_file(path)?;
    let view = ModelView::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::model::invalid_model(&e)))?;
    let sizes: Vec<usize> = view.layer_sizes().iter().map(|&s| s as usize).collect();
    let parameters = view.sizes().parameter_count();
    let macs = view.sizes().macs();
    let int8 = view.element_type() == mlp_core::format::ElementType::Int8;
    let needs = if int8 {
        mlp_embedded::MemoryNeeds::for_int8_layer_sizes(view.layer_sizes())
    } else {
        mlp_embedded::MemoryNeeds::for_layer_sizes(view.layer_sizes())
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(ModelInfo {
        version: view.version(),
        input: crate::model::Input::of(&view.input_transform()).describe(),
        input_quantization: view.input_quantization().map(|q| (q.scale, q.zero_point)),
        class_names: view
            .class_names()
            .map(|n| n.iter().map(str::to_owned).collect()),
        element_type: format!("{:?}", view.element_type()),
        parameters,
        file_bytes: bytes.len(),
        ram_bytes: needs.ram_activation_bytes,
        // One entry per gathered input (value, row offset) or pair of inputs (packed
        // values, two row offsets), and two zero entries that end the int8 list.
        kernel_stack_bytes: if int8 {
            12 * (mlp_embedded::kernel_i8::PAIRS + 2)
        } else {
            8 * mlp_embedded::kernel::CHUNK
        },
        macs,
        sizes,
    })
}

impl ModelInfo {
    /// A human-readable report.
    pub fn report(&self) -> String {
        let widest = self.sizes.iter().skip(1).copied().max().unwrap_or(0);
        let sizes: Vec<String> = self.sizes.iter().map(|s| s.to_string()).collect();
        let mut s = String::new();
        let _ = writeln!(s, "format:      version {}", self.version);
        let _ = writeln!(s, "layers:      {}", sizes.join("-"));
        let _ = writeln!(s, "input:       {}", self.input);
        if let Some((scale, zero_point)) = self.input_quantization {
            let _ = writeln!(s, "int8 input:  scale {scale}, zero point {zero_point}");
        }
        let classes = self.sizes.last().copied().unwrap_or(0);
        match &self.class_names {
            Some(names) => {
                let _ = writeln!(s, "classes:     {classes}: {}", names.join(", "));
            }
            None => {
                let _ = writeln!(s, "classes:     {classes}, unnamed");
            }
        }
        for (k, w) in self.sizes.windows(2).enumerate() {
            let act = if k + 2 < self.sizes.len() {
                "ReLU"
            } else {
                "softmax"
            };
            let _ = writeln!(
                s,
                "  dense {k}:   {:>5} -> {:<5} {act}, {} parameters",
                w[0],
                w[1],
                w[0] * w[1] + w[1]
            );
        }
        let _ = writeln!(
            s,
            "parameters:  {} ({})",
            self.parameters, self.element_type
        );
        let _ = writeln!(s, "file size:   {} bytes", self.file_bytes);
        let _ = writeln!(
            s,
            "flash:       {} bytes (the model file, read in place)",
            self.file_bytes
        );
        let ram = if self.element_type == "Int8" {
            format!("activations: 2 x {widest} bytes ping-pong + {widest} x 4 accumulators")
        } else {
            format!("activations: 2 x {widest} x 4 ping-pong")
        };
        let _ = writeln!(s, "RAM:         {} bytes ({ram})", self.ram_bytes);
        // A device is given pixels as bytes and every other input as f32 features.
        let inputs = if self.input.starts_with("pixels") {
            "input bytes"
        } else {
            "f32 features"
        };
        let _ = writeln!(
            s,
            "             + {} bytes of stack for the kernel's gathered inputs; the {} {inputs} \
             are read where they lie",
            self.kernel_stack_bytes, self.sizes[0]
        );
        let _ = writeln!(s, "MACs:        {} per inference", self.macs);
        s
    }
}
