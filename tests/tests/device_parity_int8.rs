//! Int8 models: host and device agree on every integer logit.
//!
//! Trains the walkthrough's 784-100-200-10 network for one epoch on the bundled digits
//! (`mlp-train`), quantizes it with the trainer's library (`mlp_train::quantize`,
//! calibrated on 2,000 training images, as `mlp-train quantize` does), predicts 100
//! test images on the host with the core's integer kernels
//! (`mlp_core::quant::forward_one_i8`), and runs the firmware's `predict_int8` on a
//! Cortex-M4F (`thumbv7em-none-eabihf`, QEMU `mps2-an386`, the `SMLAD` kernel) and on a
//! Cortex-M0 (`thumbv6m-none-eabi`, QEMU `microbit`: 256 KB of flash, 16 KB of RAM).
//! Every int32 logit of every image, and of a dense input, must be equal.
//!
//! The assets it writes (`mlp-embedded/firmware/target/assets/int8/`) are the int8
//! binaries' defaults, which `scripts/firmware.sh check` and `bench` use afterwards.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use mlp_core::format::ModelView;
use mlp_core::quant::{argmax_i32, dense_accumulate_i8, forward_one_i8, requantize_relu_u8};
use mlp_train::data::{load_split, Split};
use mlp_train::idx::{read_images, read_labels};
use mlp_train::model::Mlp;
use mlp_train::train::{RunOptions, TrainConfig};
use mlp_workspace_tests::firmware::{assets_dir, build, run_qemu, workspace, Run};

const LAYERS: [u32; 4] = [784, 100, 200, 10];
const PIXELS: usize = 784;
const TEST_IMAGES: usize = 100;
const CALIBRATION_IMAGES: usize = 2000;

fn digits() -> PathBuf {
    workspace().join("data/mnist-digits")
}

/// Trains 784-100-200-10 with the trainer's defaults (SGD, learning rate 0.1, batch
/// 32) for one epoch, and quantizes it with the trainer's library.
fn trained_int8_model() -> Vec<u8> {
    let out_dir = std::env::temp_dir().join(format!("mlp-int8-parity-{}", std::process::id()));
    let config = TrainConfig {
        data_dir: digits(),
        hidden: vec![100, 200],
        epochs: 1,
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
    let model = Mlp::load(&path).expect("load the trained model");
    let _ = fs::remove_dir_all(&out_dir);
    let mut calibration = load_split(&digits(), Split::Train, None).expect("training images");
    calibration
        .pixels
        .truncate(CALIBRATION_IMAGES * calibration.features);
    calibration.labels.truncate(CALIBRATION_IMAGES);
    mlp_train::quantize::quantize(&model, &calibration).expect("quantize with mlp-train")
}

/// The host's logits: the core's integer forward pass over the file's layers.
fn host_int8_logits(view: &ModelView<'_>, pixels: &[u8]) -> Vec<i32> {
    let width = view.sizes().max_output();
    let (mut a, mut b, mut acc) = (vec![0u8; width], vec![0u8; width], vec![0i32; width]);
    forward_one_i8(
        view.int8_layers().map(|l| l.params()),
        pixels,
        &mut a,
        &mut b,
        &mut acc,
    )
    .expect("host int8 prediction")
    .to_vec()
}

/// Multiply-accumulates the zero-skipping kernels really do for one image: for each
/// layer, its non-zero inputs times its outputs (the hidden inputs are the uint8
/// activations, zero where the ReLU clamped).
fn effective_macs(view: &ModelView<'_>, pixels: &[u8]) -> usize {
    let mut x = pixels.to_vec();
    let mut macs = 0;
    for layer in view.int8_layers() {
        let params = layer.params();
        macs += x.iter().filter(|&&v| v != 0).count() * layer.outputs;
        let mut acc = vec![0i32; layer.outputs];
        dense_accumulate_i8(&x, params.weights, params.bias, &mut acc);
        let mut y = vec![0u8; layer.outputs];
        requantize_relu_u8(&acc, params.multiplier, params.shift, &mut y);
        x = y;
    }
    macs
}

/// The input the firmware uses to measure a dense (no zero pixel) inference.
fn dense_pixels() -> Vec<u8> {
    (0..PIXELS).map(|k| (k % 255) as u8 + 1).collect()
}

struct Setup {
    host_logits: Vec<Vec<i32>>,
    dense_logits: Vec<i32>,
}

/// Trains, quantizes, predicts on the host and writes the int8 assets; once per test
/// binary.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let model = trained_int8_model();
        let view = ModelView::decode(&model).expect("a valid int8 model");
        assert_eq!(view.layer_sizes(), LAYERS);
        let images = read_images(&digits().join("t10k-images-idx3-ubyte.gz")).expect("images");
        let labels = read_labels(&digits().join("t10k-labels-idx1-ubyte.gz"), 10).expect("labels");
        let images = &images.pixels[..TEST_IMAGES * PIXELS];
        let host_logits: Vec<Vec<i32>> = images
            .chunks_exact(PIXELS)
            .map(|image| host_int8_logits(&view, image))
            .collect();
        let expected: Vec<u8> = host_logits.iter().map(|l| argmax_i32(l) as u8).collect();
        let correct = expected.iter().zip(&labels).filter(|(p, l)| p == l).count();
        let effective: usize = images
            .chunks_exact(PIXELS)
            .map(|image| effective_macs(&view, image))
            .sum();
        let stats = format!(
            "images {TEST_IMAGES}\ncorrect_labels {correct}\nmodel_bytes {}\n\
             mean_effective_macs {:.1}\ndense_effective_macs {}\nnominal_macs 100400\n",
            model.len(),
            effective as f64 / TEST_IMAGES as f64,
            effective_macs(&view, &dense_pixels()),
        );
        eprintln!("host (int8): {correct}/{TEST_IMAGES} test labels predicted right\n{stats}");
        assert!(
            correct >= 80,
            "the quantized model should get most digits right, got {correct}/{TEST_IMAGES}"
        );
        let assets = assets_dir().join("int8");
        fs::create_dir_all(&assets).unwrap();
        fs::write(assets.join("model.mlp"), &model).unwrap();
        fs::write(assets.join("images.bin"), images).unwrap();
        fs::write(assets.join("expected.bin"), &expected).unwrap();
        fs::write(assets.join("host-stats.txt"), stats).unwrap();
        Setup {
            dense_logits: host_int8_logits(&view, &dense_pixels()),
            host_logits,
        }
    })
}

fn parse_logits(line: &str) -> Vec<i32> {
    let hex = line.split(" logits ").nth(1).expect("logits on the line");
    hex.split_whitespace()
        .map(|h| u32::from_str_radix(h, 16).expect("hex") as i32)
        .collect()
}

/// Checks one firmware run's output against the host, logit by logit.
fn assert_same_logits(run: &Run, setup: &Setup, what: &str) {
    assert!(
        run.stdout.contains("int8 model 784 100 200 10"),
        "{what}:\n{}",
        run.stdout
    );
    let mut images = 0;
    let mut dense = false;
    for line in run.stdout.lines() {
        if let Some(rest) = line.strip_prefix("image ") {
            let index: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
            assert_eq!(
                parse_logits(line),
                setup.host_logits[index],
                "{what}: image {index} logits differ from the host's"
            );
            images += 1;
        } else if line.starts_with("dense ") {
            assert_eq!(
                parse_logits(line),
                setup.dense_logits,
                "{what}: dense input logits differ from the host's"
            );
            dense = true;
        }
    }
    assert_eq!(images, TEST_IMAGES, "{what}: every image:\n{}", run.stdout);
    assert!(dense, "{what}: the dense input:\n{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("result: {TEST_IMAGES}/{TEST_IMAGES} match")),
        "{what}:\n{}",
        run.stdout
    );
    assert!(run.success, "{what}: exit status:\n{}", run.stdout);
}

#[test]
fn int8_logits_are_identical_on_a_cortex_m4f_with_smlad() {
    let setup = setup();
    let target = "thumbv7em-none-eabihf";
    let elf = build(target, "int8-m4f", &["--bins"], &[]).join("predict_int8");
    let run = run_qemu(&["-cpu", "cortex-m4", "-machine", "mps2-an386"], &elf, &[]);
    assert_same_logits(&run, setup, "int8 on mps2-an386 (Cortex-M4F)");
}

#[test]
fn int8_logits_are_identical_on_a_cortex_m7() {
    let setup = setup();
    // The Cortex-M4F binary runs unchanged on the M7 (same Armv7E-M instruction set).
    let target = "thumbv7em-none-eabihf";
    let elf = build(target, "int8-m4f", &["--bins"], &[]).join("predict_int8");
    let run = run_qemu(&["-cpu", "cortex-m7", "-machine", "mps2-an500"], &elf, &[]);
    assert_same_logits(&run, setup, "int8 on mps2-an500 (Cortex-M7)");
}

#[test]
fn int8_logits_are_identical_on_a_cortex_m33() {
    let setup = setup();
    let target = "thumbv8m.main-none-eabihf";
    // Another memory map (MLP_BOARD=an505).
    let built = build(
        target,
        "int8-m33",
        &["--bin", "predict_int8"],
        &[("MLP_BOARD", "an505".into())],
    );
    let elf = built.join("predict_int8");
    let run = run_qemu(&["-cpu", "cortex-m33", "-machine", "mps2-an505"], &elf, &[]);
    assert_same_logits(&run, setup, "int8 on mps2-an505 (Cortex-M33)");
}

#[test]
fn int8_logits_are_identical_on_a_cortex_m0_microbit() {
    let setup = setup();
    let target = "thumbv6m-none-eabi";
    // The micro:bit build has another memory map (MLP_BOARD).
    let built = build(
        target,
        "int8-microbit",
        &["--bin", "predict_int8"],
        &[("MLP_BOARD", "microbit".into())],
    );
    let elf = built.join("predict_int8");
    let run = run_qemu(&["-machine", "microbit"], &elf, &[]);
    assert_same_logits(&run, setup, "int8 on microbit (Cortex-M0)");
    eprintln!(
        "{}",
        run.stdout
            .lines()
            .filter(|l| !l.starts_with("image "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
