//! The `inspect` command: what a model file holds and what a device needs to run it.
//!
//! - flash = the model file's size (the firmware reads the weights in place);
//! - RAM = activations only: two ping-pong buffers as long as the widest layer output,
//!   `2 × max(outputs) × 4` bytes, plus the input, `inputs × 4` bytes (f32); for int8
//!   models `2 × max(outputs)` bytes, `max(outputs) × 4` bytes of int32 accumulators and
//!   the input as `inputs` raw bytes;
//! - MACs per inference = `Σ inputs × outputs` over the layers.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use mlp_core::format::ModelView;

/// Figures about a model file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// Layer widths, input first.
    pub sizes: Vec<usize>,
    /// How parameters are stored (`F32`, `Int8`).
    pub element_type: String,
    /// Weights and biases.
    pub parameters: usize,
    /// Model file size in bytes (= flash needed).
    pub file_bytes: usize,
    /// Activation RAM in bytes: ping-pong buffers plus the input.
    pub ram_bytes: usize,
    /// Multiply-accumulates per inference.
    pub macs: usize,
}

/// Reads the figures of a model file.
pub fn inspect(path: &Path) -> Result<ModelInfo> {
    let bytes = crate::model::read_model_file(path)?;
    let view = ModelView::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::model::invalid_model(&e)))?;
    let sizes: Vec<usize> = view.layer_sizes().iter().map(|&s| s as usize).collect();
    let parameters = view.sizes().parameter_count();
    let macs = view.sizes().macs();
    let widest_output = view.sizes().max_output();
    Ok(ModelInfo {
        element_type: format!("{:?}", view.element_type()),
        parameters,
        file_bytes: bytes.len(),
        ram_bytes: match view.element_type() {
            // uint8 ping-pong activations, int32 accumulators, the input as raw bytes.
            mlp_core::format::ElementType::Int8 => 2 * widest_output + widest_output * 4 + sizes[0],
            _ => 2 * widest_output * 4 + sizes[0] * 4,
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
        let _ = writeln!(s, "layers:      {}", sizes.join("-"));
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
            format!(
                "2 x {widest} bytes ping-pong + {widest} x 4 accumulators + {} input bytes",
                self.sizes[0]
            )
        } else {
            format!(
                "activations: 2 x {widest} x 4 ping-pong + {} x 4 input",
                self.sizes[0]
            )
        };
        let _ = writeln!(s, "RAM:         {} bytes ({ram})", self.ram_bytes);
        let _ = writeln!(s, "MACs:        {} per inference", self.macs);
        s
    }
}
