//! Host and device agree to the bit.
//!
//! Trains a 784-100-200-10 model on the bundled MNIST digits, predicts 100 test images
//! on the host with `mlp-core`'s forward pass, builds the firmware with that model and
//! those images for the Cortex-M4F (`thumbv7em-none-eabihf`, QEMU `mps2-an386`) and
//! for v6-M (`thumbv6m-none-eabi`, soft float, run on `mps2-an385`), runs it in QEMU,
//! and compares every logit's bits. Also boots the firmware that reads a separately
//! flashed model and checks that it refuses corrupt or foreign models with the right
//! error.
//!
//! Needs `qemu-system-arm` and the two Rust targets (`scripts/setup.sh` installs them).
//! The assets it writes (`mlp-embedded/firmware/target/assets/`) are the firmware's
//! defaults, so `cargo run --release` in the firmware folder and `scripts/firmware.sh
//! bench` use the same model and images afterwards.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mlp_core::format::ModelView;
use mlp_core::network::{forward_one, LayerParams};

const LAYERS: [u32; 4] = [784, 100, 200, 10];
const PIXELS: usize = 784;
const TEST_IMAGES: usize = 100;
/// Every QEMU run ends within this many seconds, or the test fails.
const QEMU_TIMEOUT_SECONDS: &str = "120";
/// Where the separately flashed model goes (`MODEL` in the firmware's memory.x).
const MODEL_REGION: &str = "0x00300000";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn firmware_dir() -> PathBuf {
    workspace().join("mlp-embedded/firmware")
}

fn assets_dir() -> PathBuf {
    firmware_dir().join("target/assets")
}

/// An IDX file, gunzipped, without its header.
fn read_idx(name: &str, header: usize) -> Vec<u8> {
    let path = workspace().join("data/mnist-digits").join(name);
    let output = Command::new("gzip")
        .arg("-dc")
        .arg(&path)
        .output()
        .expect("run gzip");
    assert!(output.status.success(), "gzip -dc {}", path.display());
    output.stdout[header..].to_vec()
}

// --- the model ---------------------------------------------------------------------

/// The model under test, as a model file.
///
/// Trained here with `mlp-core`'s kernels (Xavier init, a few hundred SGD steps on
/// the bundled training digits): a small stand-in for the trainer, written with the
/// same core functions it uses. Swapping in `mlp-train` changes only this function.
fn train_model() -> Vec<u8> {
    dev_trainer::train(
        &LAYERS,
        &read_idx("train-images-idx3-ubyte.gz", 16),
        &read_idx("train-labels-idx1-ubyte.gz", 8),
    )
}

mod dev_trainer {
    use mlp_core::activation::{relu_backward, relu_forward};
    use mlp_core::dense::{dense_backward, dense_forward, sgd_step, DenseShape};
    use mlp_core::init::xavier_normal;
    use mlp_core::loss::softmax_cross_entropy;

    const BATCH: usize = 32;
    const STEPS: usize = 600;
    const LEARNING_RATE: f32 = 0.1;

    /// SplitMix64.
    fn rng(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    pub fn train(layers: &[u32], images: &[u8], labels: &[u8]) -> Vec<u8> {
        let sizes: Vec<usize> = layers.iter().map(|&s| s as usize).collect();
        let pixels = sizes[0];
        let count = labels.len().min(images.len() / pixels);
        let mut next = rng(42);
        let mut params: Vec<(Vec<f32>, Vec<f32>)> = sizes
            .windows(2)
            .map(|p| {
                let mut w = vec![0.0; p[0] * p[1]];
                xavier_normal(&mut w, p[0], p[1], &mut next);
                (w, vec![0.0; p[1]])
            })
            .collect();
        let mut x = vec![0.0f32; BATCH * pixels];
        let mut y_labels = vec![0u8; BATCH];
        for _ in 0..STEPS {
            for (row, label) in x.chunks_exact_mut(pixels).zip(&mut y_labels) {
                let index = (next() % count as u64) as usize;
                for (v, &p) in row
                    .iter_mut()
                    .zip(&images[index * pixels..(index + 1) * pixels])
                {
                    *v = p as f32 / 255.0;
                }
                *label = labels[index];
            }
            // Forward, keeping every layer's output (ReLU applied for hidden layers).
            let mut acts: Vec<Vec<f32>> = vec![x.clone()];
            for (k, (w, b)) in params.iter().enumerate() {
                let shape = DenseShape::new(BATCH, sizes[k], sizes[k + 1]);
                let mut y = vec![0.0; shape.output_len()];
                dense_forward(shape, &acts[k], w, b, &mut y);
                if k + 1 < params.len() {
                    relu_forward(&mut y);
                }
                acts.push(y);
            }
            let classes = *sizes.last().unwrap();
            let mut grad = vec![0.0; BATCH * classes];
            softmax_cross_entropy(acts.last().unwrap(), &y_labels, classes, Some(&mut grad));
            for k in (0..params.len()).rev() {
                let shape = DenseShape::new(BATCH, sizes[k], sizes[k + 1]);
                let mut gw = vec![0.0; shape.weight_len()];
                let mut gb = vec![0.0; shape.outputs];
                let mut gi = vec![0.0; shape.input_len()];
                let (w, b) = &mut params[k];
                dense_backward(
                    shape,
                    &acts[k],
                    w,
                    &grad,
                    (k > 0).then_some(&mut gi[..]),
                    &mut gw,
                    &mut gb,
                );
                sgd_step(w, &gw, LEARNING_RATE);
                sgd_step(b, &gb, LEARNING_RATE);
                if k > 0 {
                    relu_backward(&acts[k], &mut gi);
                    grad = gi;
                }
            }
        }
        let payload: Vec<u8> = params
            .iter()
            .flat_map(|(w, b)| w.iter().chain(b))
            .flat_map(|v| v.to_le_bytes())
            .collect();
        super::encode_model(layers, &payload)
    }
}

// --- host prediction -----------------------------------------------------------------

/// A model file's parameters as `f32` vectors, for the host forward pass.
struct HostModel {
    layers: Vec<(usize, usize, Vec<f32>, Vec<f32>)>,
}

impl HostModel {
    fn new(file: &[u8]) -> Self {
        let view = ModelView::decode(file).expect("valid model");
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let layers = view
            .layers()
            .map(|l| (l.inputs, l.outputs, floats(l.weights), floats(l.bias)))
            .collect();
        Self { layers }
    }

    fn params(&self) -> impl Iterator<Item = LayerParams<'_, f32>> {
        self.layers
            .iter()
            .map(|(inputs, outputs, w, b)| LayerParams {
                inputs: *inputs,
                outputs: *outputs,
                weights: &w[..],
                bias: &b[..],
            })
    }

    /// The logits the host predicts for one image: `pixel as f32 / 255.0`, then
    /// `mlp_core::network::forward_one`.
    fn logits(&self, pixels: &[u8]) -> Vec<f32> {
        let input: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        let width = self.layers.iter().map(|l| l.1).max().unwrap();
        let (mut a, mut b) = (vec![0.0; width], vec![0.0; width]);
        forward_one(self.params(), &input, &mut a, &mut b)
            .unwrap()
            .to_vec()
    }

    /// Multiply-accumulates the zero-skipping kernel really does for one image: for each
    /// layer, its non-zero inputs times its outputs.
    fn effective_macs(&self, pixels: &[u8]) -> usize {
        let mut x: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        let mut macs = 0;
        for (k, (inputs, outputs, w, b)) in self.layers.iter().enumerate() {
            macs += x.iter().filter(|&&v| v != 0.0).count() * outputs;
            let mut y = vec![0.0; *outputs];
            mlp_core::dense::dense_forward(
                mlp_core::dense::DenseShape::new(1, *inputs, *outputs),
                &x,
                w,
                b,
                &mut y,
            );
            if k + 1 < self.layers.len() {
                mlp_core::activation::relu_forward(&mut y);
            }
            x = y;
        }
        macs
    }
}

/// The input the firmware uses to measure a dense (no zero pixel) inference.
fn dense_pixels() -> Vec<u8> {
    (0..PIXELS).map(|k| (k % 255) as u8 + 1).collect()
}

// --- firmware and QEMU ------------------------------------------------------------------

struct Board {
    target: &'static str,
    cpu: &'static str,
    machine: &'static str,
}

const BOARDS: [Board; 2] = [
    Board {
        target: "thumbv7em-none-eabihf",
        cpu: "cortex-m4",
        machine: "mps2-an386",
    },
    Board {
        target: "thumbv6m-none-eabi",
        cpu: "cortex-m3",
        machine: "mps2-an385",
    },
];

fn build_firmware(board: &Board) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(firmware_dir())
        .args([
            "build",
            "--release",
            "--locked",
            "--bins",
            "--target",
            board.target,
        ])
        .env("CARGO_TARGET_DIR", firmware_dir().join("target"))
        .env_remove("MLP_MODEL")
        .env_remove("MLP_IMAGES")
        .env_remove("MLP_EXPECTED")
        .env_remove("MLP_LAYERS")
        .status()
        .expect("run cargo build for the firmware");
    assert!(
        status.success(),
        "firmware build for {} failed",
        board.target
    );
}

struct Run {
    success: bool,
    stdout: String,
}

fn run_qemu(board: &Board, bin: &str, extra: &[String]) -> Run {
    let elf = firmware_dir()
        .join("target")
        .join(board.target)
        .join("release")
        .join(bin);
    let output = Command::new("timeout")
        .args([
            QEMU_TIMEOUT_SECONDS,
            "qemu-system-arm",
            "-cpu",
            board.cpu,
            "-machine",
            board.machine,
        ])
        .args([
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
        ])
        .args(extra)
        .arg("-kernel")
        .arg(&elf)
        .output()
        .expect("run qemu-system-arm (scripts/setup.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_ne!(
        output.status.code(),
        Some(124),
        "{bin} on {} timed out:\n{stdout}",
        board.machine
    );
    Run {
        success: output.status.success(),
        stdout,
    }
}

fn parse_logits(line: &str) -> Vec<u32> {
    let hex = line.split(" logits ").nth(1).expect("logits on the line");
    hex.split_whitespace()
        .map(|h| u32::from_str_radix(h, 16).expect("hex bits"))
        .collect()
}

/// Checks one firmware run's output against the host, logit by logit.
fn assert_bit_identical(run: &Run, setup: &Setup, what: &str) {
    let mut images = 0;
    for line in run.stdout.lines() {
        if let Some(rest) = line.strip_prefix("image ") {
            let index: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
            let expected: Vec<u32> = setup.host_logits[index]
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(
                parse_logits(line),
                expected,
                "{what}: image {index} logits differ from the host's"
            );
            images += 1;
        } else if line.starts_with("dense ") {
            let expected: Vec<u32> = setup.dense_logits.iter().map(|v| v.to_bits()).collect();
            assert_eq!(
                parse_logits(line),
                expected,
                "{what}: dense input logits differ from the host's"
            );
        }
    }
    assert_eq!(
        images, TEST_IMAGES,
        "{what}: every image reported:\n{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("result: {TEST_IMAGES}/{TEST_IMAGES} match")),
        "{what}:\n{}",
        run.stdout
    );
    assert!(
        run.success,
        "{what}: firmware exit status is failure:\n{}",
        run.stdout
    );
}

// --- shared setup -----------------------------------------------------------------------

struct Setup {
    model: Vec<u8>,
    host_logits: Vec<Vec<f32>>,
    dense_logits: Vec<f32>,
}

/// Trains the model, predicts on the host, writes the firmware's assets and builds the
/// firmware for both boards; once per test binary.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let model = train_model();
        let host = HostModel::new(&model);
        let images = read_idx("t10k-images-idx3-ubyte.gz", 16);
        let labels = read_idx("t10k-labels-idx1-ubyte.gz", 8);
        let images = &images[..TEST_IMAGES * PIXELS];
        let host_logits: Vec<Vec<f32>> = images
            .chunks_exact(PIXELS)
            .map(|image| host.logits(image))
            .collect();
        let expected: Vec<u8> = host_logits
            .iter()
            .map(|l| mlp_core::loss::argmax(l) as u8)
            .collect();
        let correct = expected.iter().zip(&labels).filter(|(p, l)| p == l).count();
        let zero_pixels = images.iter().filter(|&&p| p == 0).count();
        let effective: usize = images
            .chunks_exact(PIXELS)
            .map(|image| host.effective_macs(image))
            .sum();
        let stats = format!(
            "images {TEST_IMAGES}\ncorrect_labels {correct}\nzero_pixel_share {:.4}\n\
             mean_effective_macs {:.1}\ndense_effective_macs {}\nnominal_macs 100400\n",
            zero_pixels as f64 / images.len() as f64,
            effective as f64 / TEST_IMAGES as f64,
            host.effective_macs(&dense_pixels()),
        );
        eprintln!("host: {correct}/{TEST_IMAGES} test labels predicted right\n{stats}");
        assert!(
            correct >= 80,
            "the trained model should get most digits right, got {correct}/{TEST_IMAGES}"
        );

        let assets = assets_dir();
        fs::create_dir_all(&assets).unwrap();
        fs::write(assets.join("model.mlp"), &model).unwrap();
        fs::write(assets.join("images.bin"), images).unwrap();
        fs::write(assets.join("expected.bin"), &expected).unwrap();
        fs::write(assets.join("host-stats.txt"), stats).unwrap();
        for board in &BOARDS {
            build_firmware(board);
        }
        Setup {
            dense_logits: host.logits(&dense_pixels()),
            model,
            host_logits,
        }
    })
}

// --- the tests --------------------------------------------------------------------------

#[test]
fn device_logits_are_bit_identical_to_the_host_on_m4f_and_m0() {
    let setup = setup();
    for board in &BOARDS {
        let run = run_qemu(board, "predict", &[]);
        assert_bit_identical(
            &run,
            setup,
            &format!("{} on {}", board.target, board.machine),
        );
    }
}

#[test]
fn a_separately_flashed_model_gives_the_same_bits() {
    let setup = setup();
    let path = assets_dir().join("region-model.mlp");
    fs::write(&path, &setup.model).unwrap();
    let board = &BOARDS[0];
    let run = run_qemu(board, "predict_region", &loader(&path));
    assert!(
        run.stdout.contains(&format!("at {MODEL_REGION}")),
        "{}",
        run.stdout
    );
    assert_bit_identical(&run, setup, "model flashed on its own");
}

/// QEMU arguments that put a file in the model's flash region, as `probe-rs download`
/// would on a board.
fn loader(path: &Path) -> [String; 2] {
    [
        "-device".into(),
        format!("loader,file={},addr={MODEL_REGION}", path.display()),
    ]
}

#[test]
fn the_device_refuses_corrupt_and_foreign_models_with_the_right_error() {
    let setup = setup();
    let board = &BOARDS[0];
    let dir = assets_dir();
    let payload_start =
        setup.model.len() - ModelView::decode(&setup.model).unwrap().payload().len();

    let mut corrupt = setup.model.clone();
    corrupt[payload_start + 1234] ^= 0x01;
    let mut bad_magic = setup.model.clone();
    bad_magic[..4].copy_from_slice(b"MLPX");
    let mut new_version = setup.model.clone();
    new_version[4] = 9;
    let mut payload = setup.model[payload_start..].to_vec();
    payload[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    // Re-encoded: the checksum is right, only the value is wrong.
    let nan = encode_model(&LAYERS, &payload);
    let foreign_layers = [784, 64, 10];
    let foreign = encode_model(
        &foreign_layers,
        &vec![0; mlp_core::format::f32_payload_len(&foreign_layers).unwrap()],
    );

    let cases: [(&str, &[u8], &str); 5] = [
        (
            "corrupt",
            &corrupt,
            "load error: invalid model file: payload checksum mismatch",
        ),
        (
            "bad-magic",
            &bad_magic,
            "load error: invalid model file: not a model file",
        ),
        (
            "new-version",
            &new_version,
            "load error: invalid model file: model format version 9 is not supported",
        ),
        (
            "nan",
            &nan,
            "load error: parameter 0 of layer 0 is not finite",
        ),
        (
            "foreign",
            &foreign,
            "load error: layer size 1 is 64, the firmware was built for 100",
        ),
    ];
    for (name, bytes, message) in cases {
        let path = dir.join(format!("region-{name}.mlp"));
        fs::write(&path, bytes).unwrap();
        let run = run_qemu(board, "predict_region", &loader(&path));
        assert!(
            !run.success,
            "{name}: the firmware must fail:\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains(message),
            "{name}: expected {message:?} in:\n{}",
            run.stdout
        );
    }
    // Nothing flashed in the region (QEMU's flash reads as zeros).
    let run = run_qemu(board, "predict_region", &[]);
    assert!(!run.success);
    assert!(
        run.stdout
            .contains("load error: invalid model file: not a model file"),
        "{}",
        run.stdout
    );
}

fn encode_model(layers: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut file = vec![0u8; mlp_core::format::encoded_len(layers, payload.len()).unwrap()];
    let used = mlp_core::format::encode(
        layers,
        mlp_core::format::ElementType::F32,
        payload,
        &mut file,
    )
    .unwrap();
    file.truncate(used);
    file
}
