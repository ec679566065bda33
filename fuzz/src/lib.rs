//! The checks the fuzz targets run on every input, kept out of the targets so that a new
//! target (an int8 loader, another firmware shape) is a few lines calling them.
//!
//! Every check panics on a property violation: libFuzzer reports a panic as a crash and
//! keeps the input under `fuzz/artifacts/<target>/`.
//!
//! - [`check_model_file`]: `mlp_core::format::ModelView::decode` must agree with
//!   [`reference`], an independent reader of every format version written from
//!   `docs/FORMAT.md`: the same verdict, and for an accepted file the same version,
//!   element type, sizes, payload and (f32 or int8) layer fields; a decoded model
//!   runs through `mlp_core::network::forward_one`; re-encoding gives the same model,
//!   and the same bytes when the file was canonical (minimal varints, aligned payload).
//! - [`check_embedded_load_f32`]: `mlp_embedded::Model::load` for several firmware
//!   shapes; a loaded model predicts finite-or-not logits without panicking, its class
//!   is in range, and the file re-encodes as above.
//! - [`check_embedded_load_int8`]: the same for `mlp_embedded::Int8Model::load`, whose
//!   logits must also equal the core's `forward_one_i8` (the host's answer), and whose
//!   accepted files the reference must accept with the same int8 fields.
//! - [`check_idx`] and [`check_image`]: the trainer's IDX reader and the image path of
//!   `predict` (`mlp-data`), which read files, so the input is written to a temporary file first.
//! - [`check_table`]: the trainer's CSV reader (`mlp_data::table`), from memory.
//! - [`protocol::check_protocol_stream`]: the device side of the serial protocol on an
//!   arbitrary byte stream.

pub mod protocol;

use std::io::Write;
use std::path::{Path, PathBuf};

use mlp_core::format::{
    encode_model, encoded_model_len, ElementType, InputSpec, InputTransform, ModelParts, ModelView,
};
use mlp_core::network::{forward_one, LayerParams};

pub mod reference;

/// Decodes `data` as a model file and checks everything that must hold for any bytes.
pub fn check_model_file(data: &[u8]) {
    let expected = reference::parse(data);
    match ModelView::decode(data) {
        Ok(view) => {
            // Display and Debug of a valid view never panic either.
            let _ = format!("{view:?}");
            match &expected {
                Ok(model) => model.assert_matches(data, &view),
                Err(why) => panic!("decode accepted a file the spec rejects: {why}"),
            }
            match view.element_type() {
                ElementType::F32 => run_f32(&view),
                _ => run_int8(&view),
            }
            let canonical = matches!(&expected, Ok(model) if model.canonical);
            check_reencode(data, &view, canonical);
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            if expected.is_ok() {
                panic!("decode rejected a file the spec accepts: {message}");
            }
        }
    }
}

/// Runs one f32 model on a fixed input with scratch buffers as long as its widest layer.
fn run_f32(view: &ModelView<'_>) {
    let sizes = view.layer_sizes();
    let mut layer_count = 0;
    for (k, layer) in view.layers().enumerate() {
        assert_eq!(layer.inputs, sizes[k] as usize);
        assert_eq!(layer.outputs, sizes[k + 1] as usize);
        assert_eq!(layer.weights.len(), layer.inputs * layer.outputs * 4);
        assert_eq!(layer.bias.len(), layer.outputs * 4);
        layer_count += 1;
    }
    assert_eq!(
        layer_count,
        sizes.len() - 1,
        "layers() must yield every layer"
    );

    let input: Vec<f32> = (0..sizes[0] as usize)
        .map(|i| ((i % 7) as f32 - 3.0) * 0.25)
        .collect();
    let width = view.sizes().max_output();
    let (mut a, mut b) = (vec![0.0f32; width], vec![0.0f32; width]);
    let layers = view.layers().map(|layer| LayerParams {
        inputs: layer.inputs,
        outputs: layer.outputs,
        weights: layer.weights.as_chunks::<4>().0,
        bias: layer.bias.as_chunks::<4>().0,
    });
    let logits = forward_one(layers, &input, &mut a, &mut b)
        .unwrap_or_else(|error| panic!("a decoded model does not run: {error}"));
    assert_eq!(logits.len(), *sizes.last().unwrap() as usize);
}

/// Runs one int8 model on a fixed input of pixel bytes with buffers as long as its
/// widest layer.
fn run_int8(view: &ModelView<'_>) {
    let sizes = view.layer_sizes();
    assert_eq!(
        view.int8_layers().count(),
        sizes.len() - 1,
        "int8_layers() must yield every layer"
    );
    let input: Vec<u8> = (0..sizes[0] as usize)
        .map(|i| (i * 37 % 256) as u8)
        .collect();
    let width = view.sizes().max_output();
    let (mut a, mut b, mut acc) = (vec![0u8; width], vec![0u8; width], vec![0i32; width]);
    let logits = mlp_core::quant::forward_one_i8(
        view.int8_layers().map(|l| l.params()),
        &input,
        &mut a,
        &mut b,
        &mut acc,
    )
    .unwrap_or_else(|error| panic!("a decoded int8 model does not run: {error}"));
    assert_eq!(logits.len(), *sizes.last().unwrap() as usize);
}

/// Re-encodes a decoded model: the result must decode to the same model, be a fixed
/// point of decode+encode, and equal the input when the input was canonical.
pub fn check_reencode(data: &[u8], view: &ModelView<'_>, canonical: bool) {
    let sizes = view.layer_sizes();
    // The parts of the decoded model, as `encode_model` takes them.
    let (offsets, scales): (Vec<f32>, Vec<f32>) = match view.input_transform() {
        InputTransform::Standardized(norm) => norm.pairs().unzip(),
        _ => Default::default(),
    };
    let input = match view.input_transform() {
        InputTransform::Features => InputSpec::Features,
        InputTransform::Pixels => InputSpec::Pixels,
        InputTransform::Standardized(_) => InputSpec::Standardized {
            offsets: &offsets,
            scales: &scales,
        },
    };
    let names: Vec<&str> = view
        .class_names()
        .map(|n| n.iter().collect())
        .unwrap_or_default();
    let mut parameters = Vec::new();
    if let Some(quantization) = view.input_quantization() {
        parameters.extend_from_slice(&quantization.scale.to_le_bytes());
    }
    // Where the layers start: an f32 layer with its weights, an int8 one with its output
    // scale, 4 bytes before its biases.
    let first_layer = match view.layers().next() {
        Some(layer) => layer.weights.as_ptr() as usize,
        None => view.int8_layers().next().expect("a layer").bias.as_ptr() as usize - 4,
    };
    let layers_start = first_layer - view.payload().as_ptr() as usize;
    let names_len: usize = names.iter().map(|n| n.len() + 1).sum();
    parameters.extend_from_slice(&view.payload()[layers_start..view.payload().len() - names_len]);
    let parts = ModelParts {
        layer_sizes: sizes,
        element_type: view.element_type(),
        parameters: &parameters,
        input,
        input_zero_point: view.input_quantization().map_or(0, |q| q.zero_point),
        class_names: (!names.is_empty()).then_some(&names[..]),
    };
    let len = encoded_model_len(&parts).expect("encoded_model_len of a decoded model");
    let mut out = vec![0u8; len];
    let used = encode_model(&parts, &mut out).expect("encode of a decoded model");
    assert_eq!(used, len, "encode wrote encoded_model_len bytes");
    out.truncate(used);
    let again = ModelView::decode(&out).expect("a re-encoded model decodes");
    // The writer uses the oldest version that holds the parts, so an f32 model of
    // pixels in a version-2 file comes back as version 1.
    assert_eq!(again.version(), parts.version());
    assert_eq!(again.element_type(), view.element_type());
    assert_eq!(again.layer_sizes(), sizes);
    assert_eq!(again.input_transform(), view.input_transform());
    let names_of = |v: &ModelView<'_>| {
        v.class_names()
            .map(|n| n.iter().map(str::to_owned).collect::<Vec<_>>())
    };
    assert_eq!(names_of(&again), names_of(view));
    assert_eq!(again.input_quantization(), view.input_quantization());
    // An int8 model of pixels in a version-3 file comes back as version 2, without the
    // zero point's 4 bytes: the same parameters, another payload.
    if again.version() == view.version() || view.element_type() == ElementType::F32 {
        assert_eq!(again.payload_crc(), view.payload_crc());
        assert_eq!(again.payload(), view.payload());
    }
    let int8_fields = |v: &ModelView<'_>| {
        v.int8_layers()
            .map(|l| {
                let fields = [l.bias, l.multiplier, l.shift, l.weights];
                (l.output_scale.to_bits(), fields.map(<[u8]>::to_vec))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(int8_fields(&again), int8_fields(view));
    assert_eq!(
        (again.payload().as_ptr() as usize - out.as_ptr() as usize) % 4,
        0,
        "the encoder aligns the payload"
    );
    if canonical {
        assert_eq!(out, data, "a canonical file re-encodes to the same bytes");
    }
    // The payload is the file's tail in both.
    assert!(data.ends_with(view.payload()) && out.ends_with(again.payload()));
}

/// The firmware shapes the embedded loader is fuzzed with: `(IN, OUT, WIDTH)`. Seeds are
/// small models of these shapes; the last is the walkthrough's MNIST network.
macro_rules! for_each_shape {
    ($m:ident, $data:expr) => {
        $m::<1, 1, 16>($data);
        $m::<2, 2, 16>($data);
        $m::<4, 2, 16>($data);
        $m::<4, 3, 8>($data);
        $m::<8, 4, 32>($data);
        $m::<784, 10, 200>($data);
    };
}

/// Loads `data` with `mlp_embedded::Model::load` for every shape in [`for_each_shape`].
pub fn check_embedded_load_f32(data: &[u8]) {
    for_each_shape!(load_and_predict, data);
    // The helper that finds a model at the start of a flash region must not panic on
    // any region either, and what it returns is a prefix that decodes or an error.
    if let Ok(file) = mlp_embedded::model_in_region(data) {
        assert!(data.starts_with(file));
        // The file is the region minus trailing bytes: a whole file, whose payload
        // checksum `load` verifies next.
        match ModelView::decode(file) {
            Ok(_) | Err(mlp_core::format::FormatError::ChecksumMismatch { .. }) => {}
            Err(error) => panic!("model_in_region returned a file that fails with {error}"),
        }
    }
}

fn load_and_predict<const IN: usize, const OUT: usize, const WIDTH: usize>(data: &[u8]) {
    let model = match mlp_embedded::Model::<IN, OUT, WIDTH>::load(data) {
        Ok(model) => model,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let view = ModelView::decode(data).expect("Model::load accepted what decode rejects");
    assert_eq!(model.layer_sizes(), view.layer_sizes());
    assert_eq!(model.layer_sizes()[0] as usize, IN);
    assert_eq!(*model.layer_sizes().last().unwrap() as usize, OUT);
    let sizes: Vec<u32> = model.layer_sizes().to_vec();
    assert!(mlp_embedded::Model::<IN, OUT, WIDTH>::load_expecting(data, &sizes).is_ok());
    let _ = model.memory_needs();

    let mut scratch = mlp_embedded::Scratch::<WIDTH>::new();
    let mut pixels = [0u8; IN];
    for (i, p) in pixels.iter_mut().enumerate() {
        *p = (i * 37 % 256) as u8;
    }
    let by_pixels = model.predict_pixels(&pixels, &mut scratch);
    assert!(by_pixels.class < OUT);
    // The bytes through the model's input transform (pixel / 255 for a model of
    // pixels), by the host's code.
    let transform = view.input_transform();
    let mut inputs = [0.0f32; IN];
    transform.apply_to_bytes(&pixels, &mut inputs);
    let by_values = model.predict(&inputs, &mut scratch);
    assert!(by_values.class < OUT);
    // Same input, same bits, whichever entry point (NaN logits compare by bits too).
    let bits = |p: &mlp_embedded::Prediction<OUT>| p.logits.map(f32::to_bits);
    assert_eq!(bits(&by_pixels), bits(&by_values));
    let _ = by_values.probabilities();
    // Feature vectors: the stored transform, then the layers, the same bits as the
    // host's transform followed by `predict`; extreme features must not panic either.
    for value in [0.0, -1.0, 3.7e3, f32::MAX, f32::NAN] {
        let features: [f32; IN] = core::array::from_fn(|i| value * (i % 5) as f32 - 2.0);
        let mut transformed = [0.0f32; IN];
        transform.apply(&features, &mut transformed);
        let by_features = model.predict_features(&features, &mut scratch);
        assert!(by_features.class < OUT);
        assert_eq!(
            bits(&by_features),
            bits(&model.predict(&transformed, &mut scratch))
        );
        let prediction = model.predict(&[value; IN], &mut scratch);
        assert!(prediction.class < OUT);
    }
    // A misaligned copy loads and predicts the same bits (the byte-wise weight path).
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(data);
    let misaligned = mlp_embedded::Model::<IN, OUT, WIDTH>::load(&shifted[1..])
        .expect("the same bytes at another address load");
    assert_eq!(
        bits(&misaligned.predict(&inputs, &mut scratch)),
        bits(&by_values)
    );

    let canonical = matches!(reference::parse(data), Ok(m) if m.canonical);
    check_reencode(data, &view, canonical);
}

/// Loads `data` with `mlp_embedded::Int8Model::load` for every shape in
/// [`for_each_shape`].
pub fn check_embedded_load_int8(data: &[u8]) {
    for_each_shape!(load_and_predict_int8, data);
}

fn load_and_predict_int8<const IN: usize, const OUT: usize, const WIDTH: usize>(data: &[u8]) {
    let model = match mlp_embedded::Int8Model::<IN, OUT, WIDTH>::load(data) {
        Ok(model) => model,
        Err(error) => {
            let _ = error.to_string();
            // The f32 loader must refuse every int8 file, and this one every f32 file.
            if let Ok(view) = ModelView::decode(data) {
                if view.element_type() == ElementType::Int8 {
                    assert!(mlp_embedded::Model::<IN, OUT, WIDTH>::load(data).is_err());
                }
            }
            return;
        }
    };
    let view = ModelView::decode(data).expect("Int8Model::load accepted what decode rejects");
    assert_eq!(view.element_type(), ElementType::Int8);
    assert_eq!(model.layer_sizes(), view.layer_sizes());
    assert_eq!(model.layer_sizes()[0] as usize, IN);
    assert_eq!(*model.layer_sizes().last().unwrap() as usize, OUT);
    let sizes: Vec<u32> = model.layer_sizes().to_vec();
    assert!(mlp_embedded::Int8Model::<IN, OUT, WIDTH>::load_expecting(data, &sizes).is_ok());
    assert!(matches!(
        mlp_embedded::Model::<IN, OUT, WIDTH>::load(data),
        Err(mlp_embedded::LoadError::UnsupportedElementType { .. })
    ));
    let _ = model.memory_needs();

    let mut scratch = mlp_embedded::Int8Scratch::<WIDTH>::new();
    let width = view.sizes().max_output();
    let (mut a, mut b, mut acc) = (vec![0u8; width], vec![0u8; width], vec![0i32; width]);
    for pattern in 0..3usize {
        let pixels: [u8; IN] = core::array::from_fn(|i| match pattern {
            0 => (i * 37 % 256) as u8,
            1 => 255,
            _ => {
                if i % 3 == 0 {
                    0
                } else {
                    (i * 101 % 256) as u8
                }
            }
        });
        let prediction = model.predict_pixels(&pixels, &mut scratch);
        assert!(prediction.class < OUT);
        // A model that is not of pixels takes the bytes as features: transformed and
        // quantized by the host's code first.
        let quantization = view.input_quantization().expect("an int8 model");
        let quantized: [u8; IN] = match view.input_kind() {
            mlp_core::format::InputKind::Pixels => pixels,
            _ => {
                let mut q = [0u8; IN];
                let features = pixels.map(f32::from);
                mlp_core::quant::quantize_features(
                    &view.input_transform(),
                    quantization,
                    &features,
                    &mut q,
                );
                q
            }
        };
        assert_eq!(
            model
                .predict_features(&pixels.map(f32::from), &mut scratch)
                .logits,
            prediction.logits,
            "byte inputs are features"
        );
        let host = mlp_core::quant::forward_one_i8(
            view.int8_layers().map(|l| l.params()),
            &quantized,
            &mut a,
            &mut b,
            &mut acc,
        )
        .unwrap_or_else(|error| panic!("a loaded int8 model does not run on the host: {error}"));
        assert_eq!(
            &prediction.logits[..],
            host,
            "device and host logits differ"
        );
        assert_eq!(prediction.class, mlp_core::quant::argmax_i32(host));
        let _ = prediction.probabilities();
    }
    // A misaligned copy loads and predicts the same integers.
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(data);
    let misaligned = mlp_embedded::Int8Model::<IN, OUT, WIDTH>::load(&shifted[1..])
        .expect("the same bytes at another address load");
    let pixels = [200u8; IN];
    assert_eq!(
        misaligned.predict_pixels(&pixels, &mut scratch).logits,
        model.predict_pixels(&pixels, &mut scratch).logits
    );

    // What the device loaded is what the spec reads: the same int8 fields, in place.
    let spec = reference::parse(data)
        .unwrap_or_else(|why| panic!("Int8Model::load accepted a file the spec rejects: {why}"));
    spec.assert_matches(data, &view);
    check_reencode(data, &view, spec.canonical);
}

/// A per-process temporary file the file-reading targets write each input to.
pub struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    /// A file named `name` in a directory private to this process (on tmpfs when there
    /// is one, so a run does not wear a disk).
    pub fn new(name: &str) -> Self {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("mlp-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz scratch directory");
        Self {
            path: dir.join(name),
        }
    }

    /// Replaces the file's contents with `data` and returns its path.
    pub fn write(&self, data: &[u8]) -> &Path {
        let mut file = std::fs::File::create(&self.path).expect("create the fuzz scratch file");
        file.write_all(data).expect("write the fuzz scratch file");
        &self.path
    }
}

/// Reads `data` as an IDX image file and as a label file (plain, and gzip when it starts
/// with the gzip magic); whatever is read must be self-consistent.
pub fn check_idx(file: &ScratchFile, data: &[u8]) {
    let path = file.write(data);
    match mlp_data::idx::read_images(path) {
        Ok(images) => {
            assert_eq!(
                images.pixels.len(),
                images.count * images.rows * images.cols
            );
            if images.count > 0 {
                assert_eq!(
                    images.image(images.count - 1).len(),
                    images.pixels_per_image()
                );
            }
            // Plain (not gzip) input: the reader returns exactly the encoded contents.
            if !data.starts_with(&[0x1f, 0x8b]) {
                let again = mlp_data::idx::encode_images(
                    images.count as u32,
                    images.rows as u32,
                    images.cols as u32,
                    &images.pixels,
                );
                assert_eq!(again, data, "IDX images re-encode to the same bytes");
            }
        }
        Err(error) => assert!(error.to_string().contains(&*path.to_string_lossy())),
    }
    for classes in [10, 256] {
        match mlp_data::idx::read_labels(path, classes) {
            Ok(labels) => {
                assert!(labels.iter().all(|&l| usize::from(l) < classes));
                if !data.starts_with(&[0x1f, 0x8b]) {
                    assert_eq!(mlp_data::idx::encode_labels(&labels), data);
                }
            }
            Err(error) => assert!(error.to_string().contains(&*path.to_string_lossy())),
        }
    }
}

/// The image path of `predict`: decode a PNG/PGM, bring it to MNIST's 28×28 form, run
/// a fixed model on it. Also runs the 28×28 step directly on a raw grey image made from
/// the bytes, which reaches shapes the decoders rarely produce.
pub fn check_image(file: &ScratchFile, model: &DigitModel, data: &[u8]) {
    let path = file.write(data);
    if let Ok(inputs) = mlp_data::image_input::load_mnist_inputs(path) {
        check_inputs(model, &inputs);
    }
    if let [w, h, pixels @ ..] = data {
        let (w, h) = (u32::from(*w % 64) + 1, u32::from(*h % 64) + 1);
        let mut raw = vec![0u8; (w * h) as usize];
        for (dst, src) in raw.iter_mut().zip(pixels.iter().cycle()) {
            *dst = *src;
        }
        let gray = image::GrayImage::from_raw(w, h, raw).expect("buffer matches dimensions");
        match mlp_data::image_input::to_mnist_inputs(&gray) {
            Ok(inputs) => check_inputs(model, &inputs),
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
}

fn check_inputs(model: &DigitModel, inputs: &[f32]) {
    assert_eq!(inputs.len(), 784);
    assert!(
        inputs.iter().all(|v| (0.0..=1.0).contains(v)),
        "inputs in [0, 1]"
    );
    let logits = model.logits(inputs);
    assert_eq!(logits.len(), model.classes());
}

/// A model for the image path's check: its layer sizes and parameters in file order,
/// run by the core's single-sample forward pass, as `predict` runs one.
pub struct DigitModel {
    sizes: Vec<usize>,
    params: Vec<f32>,
}

impl DigitModel {
    /// A model of these layer sizes with every parameter zero (the values do not
    /// matter to the check, the shapes do).
    pub fn zeroed(sizes: &[usize]) -> DigitModel {
        let total = mlp_core::network::layer_ranges(sizes)
            .last()
            .map_or(0, |l| l.bias.end);
        DigitModel {
            sizes: sizes.to_vec(),
            params: vec![0.0; total],
        }
    }

    /// Its outputs.
    pub fn classes(&self) -> usize {
        *self.sizes.last().unwrap_or(&0)
    }

    /// The logits of one input.
    pub fn logits(&self, inputs: &[f32]) -> Vec<f32> {
        let widest = self.sizes.iter().copied().max().unwrap_or(0);
        let (mut a, mut b) = (vec![0.0; widest], vec![0.0; widest]);
        let layers: Vec<LayerParams<'_, f32>> = mlp_core::network::layer_ranges(&self.sizes)
            .map(|l| LayerParams {
                inputs: l.inputs,
                outputs: l.outputs,
                weights: &self.params[l.weights],
                bias: &self.params[l.bias],
            })
            .collect();
        forward_one(layers, inputs, &mut a, &mut b)
            .expect("a 784-input model takes the inputs")
            .to_vec()
    }
}

/// Reads `data` as a CSV training file (label column last), and when it reads, as its
/// own test file and through its written form: the same values and labels each time,
/// every value finite, every label a class; every error names the file.
pub fn check_table(data: &[u8]) {
    use mlp_data::table::{parse_rows, parse_test, parse_training, LabelColumn};
    let name = Path::new("fuzz.csv");
    match parse_training(data, name, &LabelColumn::Last, 1) {
        Ok(table) => {
            assert_eq!(table.values.len(), table.len() * table.features());
            assert!(table.values.iter().all(|v| v.is_finite()));
            assert!(table
                .labels
                .iter()
                .all(|&l| usize::from(l) < table.classes.count()));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let test = parse_test(data, Path::new("test.csv"), &table).expect("its own test file");
            assert_eq!(test.labels, table.labels);
            assert_eq!(bits(&test.values), bits(&table.values));
            let rows = parse_rows(data, Path::new("rows.csv"), &table).expect("its own rows");
            assert_eq!(bits(&rows.values), bits(&table.values));
            let again = parse_training(&table.to_csv(), name, &LabelColumn::Last, 1)
                .expect("its written form reads");
            assert_eq!(again.labels, table.labels);
            assert_eq!(bits(&again.values), bits(&table.values));
            assert_eq!(again.classes, table.classes);
        }
        Err(error) => assert!(error.to_string().starts_with("fuzz.csv: ")),
    }
}
