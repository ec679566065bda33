//! Host and device agree to the bit.
//!
//! Trains a 784-100-200-10 model on the bundled MNIST digits with the trainer
//! (`mlp-train`), predicts 100 test images on the host with the trainer's model
//! (`Mlp::logits_one`, the core's shared forward pass), builds the firmware with that model and
//! those images for the Cortex-M4F (`thumbv7em-none-eabihf`, QEMU `mps2-an386`) and
//! for v6-M (`thumbv6m-none-eabi`, soft float, run on `mps2-an385`), runs it in QEMU,
//! and compares every logit's bits. Also boots the firmware that reads a separately
//! flashed model and checks that it refuses corrupt or foreign models with the right
//! error.
//!
//! A tabular model runs end to end as well: a sensor-sized model (32 features, hidden
//! layers of 64 and 32, 4 classes) with a stored standardization (format version 3) and
//! its int8 quantization, both predicting dense feature vectors with `predict_features`
//! in the `predict_features` firmware on the Cortex-M4F and v6-M, logit for logit equal
//! to the host's.
//!
//! Needs `qemu-system-arm` and the two Rust targets (`scripts/setup.sh` installs them).
//! The assets it writes (`mlp-embedded/firmware/target/assets/`) are the firmware's
//! defaults, so `cargo run --release` in the firmware folder and `scripts/firmware.sh
//! bench` use the same model and images afterwards.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mlp_core::activation::relu_forward;
use mlp_core::dense::{dense_forward, DenseShape};
use mlp_core::format::ModelView;
use mlp_train::idx::{read_images, read_labels};
use mlp_train::model::Mlp;
use mlp_train::train::{RunOptions, TrainConfig};
use mlp_workspace_tests::firmware::{self, assets_dir, firmware_dir, workspace, Run};

const LAYERS: [u32; 4] = [784, 100, 200, 10];
const PIXELS: usize = 784;
const TEST_IMAGES: usize = 100;
/// Where the separately flashed model goes (`MODEL` in the firmware's memory.x).
const MODEL_REGION: &str = "0x00300000";

fn digits(name: &str) -> PathBuf {
    workspace().join("data/mnist-digits").join(name)
}

// --- the model ---------------------------------------------------------------------

/// Trains a model with the trainer (SGD, learning rate 0.1, batch 32) on the bundled
/// digits and returns its model file.
fn train_model(hidden: &[usize], epochs: usize) -> Vec<u8> {
    let name = format!("mlp-device-parity-{}-{hidden:?}", std::process::id());
    let out_dir = std::env::temp_dir().join(name.replace([' ', '[', ']', ','], ""));
    let config = TrainConfig {
        data_dir: workspace().join("data/mnist-digits"),
        hidden: hidden.to_vec(),
        epochs,
        ..TrainConfig::default()
    };
    let options = RunOptions {
        out_dir: out_dir.clone(),
        resume: None,
        stop_after: None,
        verbose: false,
    };
    let report = mlp_train::train::run(config, &options).expect("train with mlp-train");
    let path = report.model_path.expect("the run wrote a model");
    let file = fs::read(&path).expect("read the trained model");
    let _ = fs::remove_dir_all(&out_dir);
    file
}

// --- host prediction -----------------------------------------------------------------

/// The host side: the trainer's model, loaded from the same file the firmware embeds.
struct HostModel {
    mlp: Mlp,
}

impl HostModel {
    fn new(file: &[u8]) -> Self {
        Self {
            mlp: Mlp::from_bytes(file).expect("valid model"),
        }
    }

    fn input(pixels: &[u8]) -> Vec<f32> {
        pixels.iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// The logits the host predicts for one image: `pixel as f32 / 255.0`, then the
    /// trainer's `Mlp::logits_one` (`mlp_core::network::forward_one`).
    fn logits(&self, pixels: &[u8]) -> Vec<f32> {
        self.mlp
            .logits_one(&Self::input(pixels))
            .expect("host prediction")
    }

    /// Multiply-accumulates the zero-skipping kernel really does for one image: for each
    /// layer, its non-zero inputs times its outputs.
    fn effective_macs(&self, pixels: &[u8]) -> usize {
        let mut x = Self::input(pixels);
        let layers: Vec<_> = self.mlp.layer_params().collect();
        let mut macs = 0;
        for (k, layer) in layers.iter().enumerate() {
            macs += x.iter().filter(|&&v| v != 0.0).count() * layer.outputs;
            let mut y = vec![0.0; layer.outputs];
            let shape = DenseShape::new(1, layer.inputs, layer.outputs);
            dense_forward(shape, &x, layer.weights, layer.bias, &mut y);
            if k + 1 < layers.len() {
                relu_forward(&mut y);
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
    /// `MLP_BOARD` (the memory map) when it is not the mps2 default.
    memory_map: Option<&'static str>,
    /// The folder under the firmware's `target/tests/` that keeps its binaries.
    build: &'static str,
}

const BOARDS: [Board; 4] = [
    Board {
        target: "thumbv7em-none-eabihf",
        cpu: "cortex-m4",
        machine: "mps2-an386",
        memory_map: None,
        build: "m4f",
    },
    Board {
        target: "thumbv6m-none-eabi",
        cpu: "cortex-m3",
        machine: "mps2-an385",
        memory_map: None,
        build: "v6m",
    },
    // The Cortex-M4F binary, unchanged: the M7 runs the same Armv7E-M code.
    Board {
        target: "thumbv7em-none-eabihf",
        cpu: "cortex-m7",
        machine: "mps2-an500",
        memory_map: None,
        build: "m4f",
    },
    // Armv8-M Mainline with FPU: the core of RP2350, nRF54 and STM32U5 parts.
    Board {
        target: "thumbv8m.main-none-eabihf",
        cpu: "cortex-m33",
        machine: "mps2-an505",
        memory_map: Some("an505"),
        build: "m33",
    },
];

/// Builds the firmware for an mps2 board with the default assets.
fn build_firmware(board: &Board) {
    let vars: Vec<(&str, String)> = board
        .memory_map
        .map(|map| ("MLP_BOARD", map.to_owned()))
        .into_iter()
        .collect();
    firmware::build(board.target, board.build, &["--bins"], &vars);
}

fn run_qemu(board: &Board, bin: &str, extra: &[String]) -> Run {
    let elf = firmware_dir()
        .join("target/tests")
        .join(board.build)
        .join(bin);
    run_qemu_elf(&["-cpu", board.cpu, "-machine", board.machine], &elf, extra)
}

/// Runs an ELF in QEMU with the given machine arguments, inside `timeout`.
fn run_qemu_elf(machine: &[&str], elf: &Path, extra: &[String]) -> Run {
    firmware::run_qemu(machine, elf, extra)
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
    let mut dense = 0;
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
            dense += 1;
        }
    }
    // The dense input (no zero pixel) is the only run through every weight, and the
    // firmware's own worst case: a firmware that stopped printing it must not pass.
    assert_eq!(dense, 1, "{what}: one dense input line:\n{}", run.stdout);
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
        // The walkthrough's 784-100-200-10, two epochs.
        let model = train_model(&[100, 200], 2);
        let host = HostModel::new(&model);
        let images = read_images(&digits("t10k-images-idx3-ubyte.gz")).expect("test images");
        let labels = read_labels(&digits("t10k-labels-idx1-ubyte.gz"), 10).expect("test labels");
        assert_eq!(images.pixels_per_image(), PIXELS);
        let images = &images.pixels[..TEST_IMAGES * PIXELS];
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
fn device_logits_are_bit_identical_to_the_host_on_m4f_m0_m7_and_m33() {
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
    // Re-encoded with its class names: the checksum is right, only the value is wrong.
    let mut with_nan = Mlp::from_bytes(&setup.model).unwrap();
    with_nan.params[0] = f32::NAN;
    let nan = with_nan.to_bytes().unwrap();
    let foreign_layers = [784, 64, 10];
    let foreign = encode_model(
        &foreign_layers,
        &vec![0; mlp_core::format::f32_payload_len(&foreign_layers).unwrap()],
    );

    let int8 = int8_model(&LAYERS);

    let cases: [(&str, &[u8], &str); 6] = [
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
            "int8",
            &int8,
            "load error: the model's parameters are int8, this firmware runs f32 models",
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

/// A valid int8 model (format version 2) with these sizes: all weights 1, biases 0.
fn int8_model(layers: &[u32]) -> Vec<u8> {
    use mlp_core::quant::{write_int8_layer, QuantizedMultiplier};
    let mut payload = vec![0u8; mlp_core::format::int8_payload_len(layers).unwrap()];
    payload[..4].copy_from_slice(&1.0f32.to_le_bytes()); // input scale
    let mut at = 4;
    let m = QuantizedMultiplier::from_real(0.5).unwrap();
    for pair in layers.windows(2) {
        let (inputs, outputs) = (pair[0] as usize, pair[1] as usize);
        at += write_int8_layer(
            &mut payload[at..],
            1.0,
            &vec![1i8; inputs * outputs],
            &vec![0; outputs],
            &vec![m.multiplier; outputs],
            &vec![m.shift as i32; outputs],
        )
        .unwrap();
    }
    let mut file = vec![0u8; mlp_core::format::encoded_len(layers, payload.len()).unwrap()];
    let used = mlp_core::format::encode(
        layers,
        mlp_core::format::ElementType::Int8,
        &payload,
        &mut file,
    )
    .unwrap();
    file.truncate(used);
    file
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

/// A real Cortex-M0: QEMU's micro:bit (nRF51, 256 KB of flash, 16 KB of RAM), with a
/// model that fits it, 784-32-10 (100 KB), built with `MLP_BOARD=microbit`.
#[test]
fn device_logits_are_bit_identical_on_a_cortex_m0_microbit() {
    let layers = [784u32, 32, 10];
    let model = train_model(&[32], 1);
    let host = HostModel::new(&model);
    let images = read_images(&digits("t10k-images-idx3-ubyte.gz")).expect("test images");
    let images = &images.pixels[..TEST_IMAGES * PIXELS];
    let host_logits: Vec<Vec<f32>> = images
        .chunks_exact(PIXELS)
        .map(|image| host.logits(image))
        .collect();
    let expected: Vec<u8> = host_logits
        .iter()
        .map(|l| mlp_core::loss::argmax(l) as u8)
        .collect();

    let assets = assets_dir().join("microbit");
    fs::create_dir_all(&assets).unwrap();
    let path = |name: &str| assets.join(name).display().to_string();
    fs::write(assets.join("model.mlp"), &model).unwrap();
    fs::write(assets.join("images.bin"), images).unwrap();
    fs::write(assets.join("expected.bin"), &expected).unwrap();
    let layer_list = layers.map(|s| s.to_string()).join(",");
    // Only the binary it runs: `kernel_shapes`'s test buffers need more than the
    // micro:bit's 16 KB of RAM (it runs on the mps2 boards).
    let built = firmware::build(
        "thumbv6m-none-eabi",
        "microbit",
        &["--bin", "predict"],
        &[
            ("MLP_BOARD", "microbit".into()),
            ("MLP_LAYERS", layer_list),
            ("MLP_MODEL", path("model.mlp")),
            ("MLP_IMAGES", path("images.bin")),
            ("MLP_EXPECTED", path("expected.bin")),
        ],
    );
    let elf = built.join("predict");
    let run = run_qemu_elf(&["-machine", "microbit"], &elf, &[]);
    let setup = Setup {
        dense_logits: host.logits(&dense_pixels()),
        model,
        host_logits,
    };
    assert_bit_identical(&run, &setup, "thumbv6m-none-eabi on microbit (Cortex-M0)");
    eprintln!(
        "{}",
        run.stdout
            .lines()
            .filter(|l| !l.starts_with("image "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// --- a tabular model: stored standardization, f32 and int8 -----------------------------

/// A model a sensor user would flash. It is also what `scripts/firmware.sh bench`
/// measures per MAC for feature vectors (the firmware's default `MLP_TABULAR_LAYERS`),
/// so it is large enough that the per-call work (standardization, quantization, argmax)
/// does not drown the layers' arithmetic.
const TABULAR_LAYERS: [u32; 4] = [32, 64, 32, 4];
const TABULAR_FEATURES: usize = TABULAR_LAYERS[0] as usize;
/// Feature vectors the firmware predicts (and the bench averages over).
const TABULAR_TESTED: usize = 40;

/// Feature vectors of a made-up tabular problem: features on very different scales
/// (offsets up to 4·10⁴, spreads from 10⁻⁵ to 4·10³). Deterministic.
fn tabular_rows(count: usize) -> Vec<[f32; TABULAR_FEATURES]> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut unit = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let centres = [1e4, -3.0, 0.5, 250.0, 0.0, -7e3, 42.0, 1e-2];
    let spreads = [1e3, 0.5, 1e-3, 30.0, 1.0, 5.0, 0.25, 1e-3];
    let factors = [1.0, -0.5, 4.0, 1e-2];
    (0..count)
        .map(|_| {
            std::array::from_fn(|i| {
                let factor = factors[i / centres.len() % factors.len()];
                let k = i % centres.len();
                (factor * (centres[k] + spreads[k] * unit())) as f32
            })
        })
        .collect()
}

#[test]
fn a_tabular_model_with_stored_standardization_gives_the_hosts_bits() {
    use mlp_train::model::Input;
    use mlp_train::quantize::{quantize_features_of, Int8Model};

    let rows = tabular_rows(300);
    // The contract: mean and 1 / population std over the training rows, in f64,
    // rounded once to f32.
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..TABULAR_FEATURES)
        .map(|i| rows.iter().map(|r| f64::from(r[i])).sum::<f64>() / n)
        .collect();
    let std: Vec<f64> = (0..TABULAR_FEATURES)
        .map(|i| {
            (rows
                .iter()
                .map(|r| (f64::from(r[i]) - mean[i]).powi(2))
                .sum::<f64>()
                / n)
                .sqrt()
        })
        .collect();
    let sizes: Vec<usize> = TABULAR_LAYERS.iter().map(|&s| s as usize).collect();
    let mut seed = 7u64;
    let mut rng = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed
    };
    let mut model = Mlp::xavier(&sizes, &mut rng).unwrap();
    model.input = Input::Standardized {
        offsets: mean.iter().map(|&m| m as f32).collect(),
        scales: std
            .iter()
            .map(|&s| if s > 0.0 { (1.0 / s) as f32 } else { 1.0 })
            .collect(),
    };
    model.class_names = Some(vec![
        "idle".into(),
        "walking".into(),
        "running".into(),
        "cycling".into(),
    ]);
    let file = model.to_bytes().unwrap();
    let features: Vec<f32> = rows.iter().flatten().copied().collect();
    let int8_file = quantize_features_of(&model, &features).unwrap();
    let int8 = Int8Model::from_file_bytes(int8_file.clone(), Path::new("int8.mlp")).unwrap();

    // Dense inputs, as sensor readings are: no standardized feature is 0.0 and no
    // quantized input byte is 0, so neither kernel skips any of the first layer's inputs
    // and the bench's instructions per MAC are those of dense input. (A byte is 0 only
    // near the calibration's smallest value, so a few rows are left out.)
    let f32_view = ModelView::decode(&file).unwrap();
    let int8_view = ModelView::decode(&int8_file).unwrap();
    assert_eq!(int8_view.version(), 3);
    let is_dense = |row: &[f32; TABULAR_FEATURES]| {
        let mut standardized = [0.0f32; TABULAR_FEATURES];
        f32_view.input_transform().apply(row, &mut standardized);
        let mut quantized = [0u8; TABULAR_FEATURES];
        mlp_core::quant::quantize_features(
            &int8_view.input_transform(),
            int8_view.input_quantization().unwrap(),
            row,
            &mut quantized,
        );
        standardized.iter().all(|&v| v != 0.0) && quantized.iter().all(|&q| q != 0)
    };
    let tested: Vec<[f32; TABULAR_FEATURES]> = rows
        .iter()
        .filter(|row| is_dense(row))
        .take(TABULAR_TESTED)
        .copied()
        .collect();
    assert_eq!(tested.len(), TABULAR_TESTED, "dense rows");
    let host: Vec<Vec<u32>> = tested
        .iter()
        .map(|r| {
            let logits = model.logits_features(r).unwrap();
            logits.iter().map(|v| v.to_bits()).collect()
        })
        .collect();
    let host_int8: Vec<Vec<u32>> = int8.with_feature_predictor(|predict, _| {
        tested
            .iter()
            .map(|r| predict(r).iter().map(|&l| l as u32).collect())
            .collect()
    });
    let classes: std::collections::HashSet<usize> = host
        .iter()
        .map(|bits| {
            let logits: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            mlp_core::loss::argmax(&logits)
        })
        .collect();
    assert!(
        classes.len() > 1,
        "the features reach the logits: {classes:?}"
    );

    let assets = assets_dir().join("tabular");
    fs::create_dir_all(&assets).unwrap();
    fs::write(assets.join("model.mlp"), &file).unwrap();
    fs::write(assets.join("int8-model.mlp"), &int8_file).unwrap();
    let bytes: Vec<u8> = tested
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    fs::write(assets.join("features.bin"), bytes).unwrap();
    let path = |name: &str| assets.join(name).display().to_string();
    let layer_list = TABULAR_LAYERS.map(|s| s.to_string()).join(",");
    for board in &BOARDS[..2] {
        let built = firmware::build(
            board.target,
            &format!("tabular-{}", board.build),
            &["--bin", "predict_features"],
            &[
                ("MLP_TABULAR_LAYERS", layer_list.clone()),
                ("MLP_TABULAR_MODEL", path("model.mlp")),
                ("MLP_TABULAR_INT8_MODEL", path("int8-model.mlp")),
                ("MLP_TABULAR_FEATURES", path("features.bin")),
            ],
        );
        let elf = built.join("predict_features");
        let run = run_qemu_elf(&["-cpu", board.cpu, "-machine", board.machine], &elf, &[]);
        let what = format!("{} on {}", board.target, board.machine);
        assert!(run.success, "{what}:\n{}", run.stdout);
        assert!(
            run.stdout
                .contains("input standardized; int8 input standardized"),
            "{what}:\n{}",
            run.stdout
        );
        let (mut f32_lines, mut int8_lines) = (0, 0);
        for line in run.stdout.lines() {
            let (expected, rest) = if let Some(rest) = line.strip_prefix("int8 features ") {
                int8_lines += 1;
                (&host_int8, rest)
            } else if let Some(rest) = line.strip_prefix("features ") {
                f32_lines += 1;
                (&host, rest)
            } else {
                continue;
            };
            let index: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
            assert_eq!(parse_logits(line), expected[index], "{what}: {line}");
        }
        assert_eq!(
            (f32_lines, int8_lines),
            (tested.len(), tested.len()),
            "{what}:\n{}",
            run.stdout
        );
    }
}
