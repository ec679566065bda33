//! The network being trained: layer sizes and all parameters in one flat vector laid
//! out exactly like the model file's payload (for each layer `W: [inputs, outputs]`,
//! then `b: [outputs]`), so saving is a byte copy and the optimizers work on one
//! slice. Reading and writing go through `mlp_core::format`, with the input transform
//! and the class names a model file holds (format version 3).

use std::path::Path;

use anyhow::{bail, Context, Result};
use mlp_core::format::{
    self, ElementType, InputSpec, InputTransform, ModelParts, ModelView, Normalization,
};
use mlp_core::init::{xavier_normal, RandomSource};
use mlp_core::network::{forward_one, layer_ranges, LayerParams, LayerRanges};

/// Where one layer's parameters are in the flat parameter vector (the core's
/// [`LayerRanges`]).
pub type LayerLayout = LayerRanges;

/// How a model's first-layer inputs come from the caller's features: the owned form
/// of the model file's input transform (`mlp_core::format::InputTransform`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Input {
    /// The features as given.
    Features,
    /// Pixels: `x / 255` (every model of images; format versions 1 and 2).
    #[default]
    Pixels,
    /// `(x[i] - offsets[i]) × scales[i]`, in f32 (`mlp_core::network::standardize`).
    Standardized {
        /// One per input.
        offsets: Vec<f32>,
        /// One per input.
        scales: Vec<f32>,
    },
}

impl Input {
    /// As the model file's reader sees it.
    fn spec(&self) -> InputSpec<'_> {
        match self {
            Input::Features => InputSpec::Features,
            Input::Pixels => InputSpec::Pixels,
            Input::Standardized { offsets, scales } => InputSpec::Standardized { offsets, scales },
        }
    }

    /// The owned copy of a file's transform.
    pub fn of(transform: &InputTransform<'_>) -> Input {
        match transform {
            InputTransform::Features => Input::Features,
            InputTransform::Pixels => Input::Pixels,
            InputTransform::Standardized(norm) => {
                let (offsets, scales) = norm.pairs().unzip();
                Input::Standardized { offsets, scales }
            }
        }
    }

    /// Runs `f` with the transform the core applies (the code the device runs).
    pub fn with_transform<R>(&self, f: impl FnOnce(&InputTransform<'_>) -> R) -> R {
        match self {
            Input::Features => f(&InputTransform::Features),
            Input::Pixels => f(&InputTransform::Pixels),
            Input::Standardized { offsets, scales } => {
                let bytes = |v: &[f32]| v.iter().map(|x| x.to_le_bytes()).collect::<Vec<_>>();
                let (offsets, scales) = (bytes(offsets), bytes(scales));
                match Normalization::from_le_bytes(&offsets, &scales) {
                    Some(norm) => f(&InputTransform::Standardized(norm)),
                    // Unequal lengths: refused when the model is saved; the offsets
                    // alone would be a guess.
                    None => f(&InputTransform::Features),
                }
            }
        }
    }

    /// A short description: `pixels (x / 255)`, `standardized (784 offsets and scales)`.
    pub fn describe(&self) -> String {
        match self {
            Input::Features => "features, as given".to_owned(),
            Input::Pixels => "pixels (x / 255)".to_owned(),
            Input::Standardized { offsets, .. } => format!(
                "standardized ((x - offset) x scale, {} offsets and scales)",
                offsets.len()
            ),
        }
    }
}

/// A multi-layer perceptron: Dense layers with ReLU between them, softmax at the end.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    sizes: Vec<usize>,
    layout: Vec<LayerLayout>,
    /// All parameters in file order.
    pub params: Vec<f32>,
    /// How the first layer's inputs come from the features (pixels for a new network).
    pub input: Input,
    /// One name per class, stored in the model file; `None` for none.
    pub class_names: Option<Vec<String>>,
}

/// The flat layout of the parameters of a network with these layer sizes.
pub fn layout(sizes: &[usize]) -> Vec<LayerLayout> {
    layer_ranges(sizes).collect()
}

impl Mlp {
    /// A network with all parameters zero. `sizes` are the layer widths, input first
    /// (e.g. `[784, 100, 200, 10]`); they must be valid for the model format.
    pub fn zeroed(sizes: &[usize]) -> Result<Mlp> {
        let sizes_u32 = to_u32(sizes)?;
        format::f32_payload_len(&sizes_u32)
            .map_err(|e| anyhow::anyhow!("layer sizes {sizes:?}: {e}"))?;
        let layout = layout(sizes);
        let total = layout.last().map_or(0, |l| l.bias.end);
        Ok(Mlp {
            sizes: sizes.to_vec(),
            layout,
            params: vec![0.0; total],
            input: Input::Pixels,
            class_names: None,
        })
    }

    /// A network initialised as the walkthrough does: Xavier-normal weights drawn
    /// layer after layer from `rng`, zero biases.
    pub fn xavier(sizes: &[usize], rng: &mut impl RandomSource) -> Result<Mlp> {
        let mut mlp = Mlp::zeroed(sizes)?;
        for l in mlp.layout.clone() {
            xavier_normal(&mut mlp.params[l.weights], l.inputs, l.outputs, rng);
        }
        Ok(mlp)
    }

    /// Layer widths, input first.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Where each layer's parameters are.
    pub fn layout(&self) -> &[LayerLayout] {
        &self.layout
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        *self.sizes.last().unwrap_or(&0)
    }

    /// The widest layer (inputs included).
    pub fn widest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }

    /// Borrowed layer parameters for the core's kernels.
    pub fn layer_params(&self) -> impl ExactSizeIterator<Item = LayerParams<'_, f32>> + '_ {
        self.layout.iter().map(|l| LayerParams {
            inputs: l.inputs,
            outputs: l.outputs,
            weights: &self.params[l.weights.clone()],
            bias: &self.params[l.bias.clone()],
        })
    }

    /// The model file bytes (`mlp_core::format`, f32 elements, with the input
    /// transform and class names: version 1 for a model of pixels without names).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let sizes = to_u32(&self.sizes)?;
        let payload: Vec<u8> = self.params.iter().flat_map(|p| p.to_le_bytes()).collect();
        let names = self.name_refs();
        let parts = ModelParts {
            layer_sizes: &sizes,
            element_type: ElementType::F32,
            parameters: &payload,
            input: self.input.spec(),
            input_zero_point: 0,
            class_names: names.as_deref(),
        };
        let len = format::encoded_model_len(&parts).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut out = vec![0u8; len];
        let used = format::encode_model(&parts, &mut out).map_err(|e| anyhow::anyhow!("{e}"))?;
        out.truncate(used);
        Ok(out)
    }

    /// The input transform as the model file's writer takes it.
    pub fn input_spec(&self) -> InputSpec<'_> {
        self.input.spec()
    }

    /// The class names as string slices, for the model file's writer.
    pub fn name_refs(&self) -> Option<Vec<&str>> {
        self.class_names
            .as_ref()
            .map(|n| n.iter().map(String::as_str).collect())
    }

    /// Class `class`'s name, or its index when the model has no names.
    pub fn class_label(&self, class: usize) -> String {
        class_label(self.class_names.as_deref(), class)
    }

    /// The first layer's inputs from feature vectors (one or more rows of
    /// [`Mlp::inputs`] values), by the model's input transform (the core's arithmetic,
    /// the one the device runs).
    pub fn inputs_of(&self, features: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; features.len()];
        let width = self.inputs().max(1);
        self.input.with_transform(|t| {
            for (row, x) in out.chunks_mut(width).zip(features.chunks(width)) {
                t.apply(x, row);
            }
        });
        out
    }

    /// The first layer's inputs from rows of byte features (images' pixels): for a model
    /// of pixels, `pixel / 255`.
    pub fn inputs_of_bytes(&self, features: &[u8]) -> Vec<f32> {
        let mut out = vec![0.0; features.len()];
        let width = self.inputs().max(1);
        self.input.with_transform(|t| {
            for (row, x) in out.chunks_mut(width).zip(features.chunks(width)) {
                t.apply_to_bytes(x, row);
            }
        });
        out
    }

    /// Logits of one feature vector: the input transform, then [`Mlp::logits_one`].
    pub fn logits_features(&self, features: &[f32]) -> Result<Vec<f32>> {
        self.logits_one(&self.inputs_of(features))
    }

    /// Reads a model from model file bytes, validated by the core's decoder. Only
    /// `f32` models can be read back into a trainable network.
    pub fn from_bytes(bytes: &[u8]) -> Result<Mlp> {
        let view = ModelView::decode(bytes).map_err(|e| anyhow::anyhow!(invalid_model(&e)))?;
        if view.element_type() != ElementType::F32 {
            bail!(
                "holds {:?} parameters; the trainer reads f32 models only",
                view.element_type()
            );
        }
        let sizes: Vec<usize> = view.layer_sizes().iter().map(|&s| s as usize).collect();
        let mut params = Vec::with_capacity(view.payload().len() / 4);
        for layer in view.layers() {
            for bytes in [layer.weights, layer.bias] {
                params.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
        }
        Ok(Mlp {
            layout: layout(&sizes),
            sizes,
            params,
            input: Input::of(&view.input_transform()),
            class_names: view
                .class_names()
                .map(|n| n.iter().map(str::to_owned).collect()),
        })
    }

    /// Reads a model file, with errors that name it.
    pub fn load(path: &Path) -> Result<Mlp> {
        Mlp::from_file_bytes(&read_model_file(path)?, path)
    }

    /// [`Mlp::from_bytes`] of what [`read_model_file`] read from `path`, with errors
    /// that name it.
    pub fn from_file_bytes(bytes: &[u8], path: &Path) -> Result<Mlp> {
        Mlp::from_bytes(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Writes the model file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::fsio::write_bytes_atomic(path, &bytes)
            .with_context(|| format!("{}: cannot write model file", path.display()))
    }

    /// Logits of one input, through the core's shared single-sample forward pass.
    pub fn logits_one(&self, input: &[f32]) -> Result<Vec<f32>> {
        let mut a = vec![0.0; self.widest()];
        let mut b = vec![0.0; self.widest()];
        let logits = forward_one(self.layer_params(), input, &mut a, &mut b)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(logits.to_vec())
    }

    /// Checks that the model's input and output sizes fit a data set's.
    pub fn check_fits(&self, model_name: &Path, features: usize, classes: usize) -> Result<()> {
        check_sizes(
            model_name,
            (self.inputs(), self.classes()),
            "the data",
            features,
            classes,
        )
    }
}

/// Checks that a model of `(inputs, outputs)` (f32 or int8, at `model`) fits data
/// (`data`: how the message names it) of `features` inputs per example and `classes`
/// classes; the error names the model file, both sizes and the data.
pub fn check_sizes(
    model: &Path,
    (inputs, outputs): (usize, usize),
    data: &str,
    features: usize,
    classes: usize,
) -> Result<()> {
    let model = model.display();
    if inputs != features {
        bail!("{model}: the model takes {inputs} inputs but {data} has {features} per example");
    }
    if outputs != classes {
        bail!("{model}: the model has {outputs} outputs but {data} has {classes} classes");
    }
    Ok(())
}

/// Class `class`'s name from `names`, or its index when there are none.
pub fn class_label(names: Option<&[String]>, class: usize) -> String {
    names
        .and_then(|n| n.get(class))
        .map_or_else(|| class.to_string(), String::clone)
}

fn to_u32(sizes: &[usize]) -> Result<Vec<u32>> {
    sizes
        .iter()
        .map(|&s| u32::try_from(s).context("layer size does not fit in u32"))
        .collect()
}

/// Parses `--hidden 100,200` into widths; `none` means no hidden layer (a linear
/// classifier). An empty value is refused: it is more often a shell variable that
/// was not set than a wish for no hidden layer.
pub fn parse_hidden(text: &str) -> Result<Vec<usize>, String> {
    if text.trim().is_empty() {
        return Err(
            "an empty list of widths: give widths such as 100,200, or none for no hidden layer"
                .to_owned(),
        );
    }
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|p| match p.trim().parse::<usize>() {
            Ok(0) => Err("hidden layer widths must be positive".to_owned()),
            Ok(v) => Ok(v),
            Err(_) => Err(format!(
                "'{p}' is not a layer width (expected e.g. 100,200)"
            )),
        })
        .collect()
}

/// Reads a model file (f32 or int8) once, with bounds ([`crate::fsio::read_input`]):
/// a FIFO can be read only once, and a device like `/dev/zero` never ends.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    crate::fsio::read_input(path, &format::MAGIC)
        .with_context(|| format!("{}: cannot read model file", path.display()))
}

/// What is wrong with a model file that the core's decoder refused, said once:
/// `not a valid model file: <the problem>` (the core's "not a model file" for a bad
/// magic would repeat the first words).
pub fn invalid_model(e: &format::FormatError) -> String {
    match e {
        format::FormatError::BadMagic { found } => {
            let bytes: Vec<String> = found.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "not a valid model file: it starts with {}, expected \"MLPW\"",
                bytes.join(" ")
            )
        }
        e => format!("not a valid model file: {e}"),
    }
}

/// Hidden widths as `--hidden` takes them: `100,200`, or `none`.
pub fn hidden_text(hidden: &[usize]) -> String {
    if hidden.is_empty() {
        return "none".to_owned();
    }
    hidden
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_file_order() {
        let l = layout(&[3, 2, 1]);
        assert_eq!(l[0].weights, 0..6);
        assert_eq!(l[0].bias, 6..8);
        assert_eq!(l[1].weights, 8..10);
        assert_eq!(l[1].bias, 10..11);
    }

    #[test]
    fn bytes_round_trip() {
        let mut n = 0u64;
        let mut rng = || {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            n
        };
        let mut m = Mlp::xavier(&[5, 4, 3], &mut rng).unwrap();
        let back = Mlp::from_bytes(&m.to_bytes().unwrap()).unwrap();
        assert_eq!(m, back);
        assert_eq!(
            ModelView::decode(&m.to_bytes().unwrap()).unwrap().version(),
            1
        );
        m.input = Input::Standardized {
            offsets: vec![1.0, -2.0, 0.5, 3.0, 1e-3],
            scales: vec![0.25, 1.0, 2.0, 1e3, 7.0],
        };
        m.class_names = Some(vec!["a".into(), "b c".into(), "Ä".into()]);
        let back = Mlp::from_bytes(&m.to_bytes().unwrap()).unwrap();
        assert_eq!(m, back);
        assert_eq!(back.class_label(2), "Ä");
        let features = [3.0, 4.0, 5.0, 6.0, 7.0];
        let inputs = back.inputs_of(&features);
        assert_eq!(inputs[0], (3.0f32 - 1.0) * 0.25);
        assert_eq!(inputs[3], (6.0f32 - 3.0) * 1e3);
        assert_eq!(
            back.logits_features(&features).unwrap(),
            back.logits_one(&inputs).unwrap()
        );
        let logits = m.logits_one(&[0.5; 5]).unwrap();
        assert_eq!(logits.len(), 3);
    }

    #[test]
    fn hidden_parsing() {
        assert_eq!(parse_hidden("100,200").unwrap(), vec![100, 200]);
        assert_eq!(parse_hidden("none").unwrap(), Vec::<usize>::new());
        assert!(parse_hidden("").is_err());
        assert!(parse_hidden(" ").is_err());
        assert!(parse_hidden("10,x").is_err());
        assert!(parse_hidden("0").is_err());
    }
}
