//! The board firmware of `boards/` in QEMU — the STM32F4 one in `netduinoplus2` (an
//! STM32F405), the micro:bit one in `microbit` (an nRF51822, Cortex-M0) — driven over
//! its UART by the trainer's `board` code exactly as a user's `mlp-train board
//! evaluate --qemu BOARD` drives it:
//!
//! - each model the board can hold (STM32F4: `f32` and int8; micro:bit: int8), flashed
//!   into the model region on its own: 200 real test images each, every logit equal to
//!   the host's bit for bit, the device's accuracy equal to the host's;
//! - the protocol's bad frames (garbage, truncated, oversized, wrong image length,
//!   unknown request) against the running device: an error answer each, and a correct
//!   prediction right after;
//! - an empty model region: `Info` says why there is no model, predictions are refused;
//! - a model of the bundled CSV table on the STM32F4 firmware built for its shape
//!   (`MLP_LAYERS`), `f32` and int8: the test split's rows sent as `f32` features, every
//!   logit equal to the host's bit for bit, the device's accuracy equal to the host's.
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` target (`scripts/setup.sh`).

use std::fs;
use std::path::{Path, PathBuf};

use mlp_embedded::protocol::{ErrorAnswer, ModelStatus, Request};
use mlp_train::board::{
    evaluate, evaluate_rows, table_rows, Board, BoardEvaluation, EmulatedBoard, FeatureRows,
    HostModel, Reply, RowsOf, Target,
};
use mlp_train::data::{load_split, load_table_splits, Split, TableSource};
use mlp_train::model::{Input, Mlp};
use mlp_train::train::{RunOptions, TrainConfig};
use mlp_workspace_tests::firmware::{self, workspace};

const IMAGES: usize = 200;

/// Builds a board's firmware (release, into `boards/target`, which every board crate's
/// `.cargo/config.toml` names, so `board --qemu` finds it without `--firmware`) and
/// returns a copy of its ELF that no other test's build overwrites.
fn firmware(board: EmulatedBoard, folder: &str) -> PathBuf {
    let elf = build_board(folder, folder, &[]);
    let default = workspace().join(board.default_firmware());
    assert!(
        default.is_file(),
        "{} missing after the build",
        default.display()
    );
    elf
}

/// Builds the board crate in `boards/<folder>` into `boards/target` with these
/// variables set (`MLP_LAYERS` unset otherwise) and returns its ELF, copied into
/// `boards/target/tests/<name>/`: the boards share one target folder, so their
/// dependencies compile once.
fn build_board(folder: &str, name: &str, vars: &[(&str, String)]) -> PathBuf {
    let out = workspace().join("boards/target/tests").join(name);
    firmware::build_and_copy(
        &workspace().join("boards").join(folder),
        &workspace().join("boards/target"),
        &[],
        &["MLP_LAYERS"],
        vars,
        &out,
    );
    out.join(format!("mlp-board-{folder}"))
}

/// Trains the walkthrough's network for a few epochs with the trainer and writes its
/// model file and an int8 quantization of it into `dir`.
fn models(dir: &Path) -> (PathBuf, PathBuf) {
    let config = TrainConfig {
        data_dir: workspace().join("data/mnist-digits"),
        epochs: 3,
        ..TrainConfig::default()
    };
    let options = RunOptions {
        out_dir: dir.join("run"),
        resume: None,
        stop_after: None,
        verbose: false,
    };
    let report = mlp_train::train::run(config, &options).expect("train with mlp-train");
    let f32_path = report.model_path.expect("the run wrote a model");
    let model = mlp_train::model::Mlp::load(&f32_path).unwrap();
    let mut calibration = load_split(&workspace().join("data/mnist-digits"), Split::Train, None)
        .expect("the bundled digits");
    calibration.pixels.truncate(1000 * calibration.features);
    calibration.labels.truncate(1000);
    let int8 = mlp_train::quantize::quantize(&model, &calibration).unwrap();
    let int8_path = dir.join("model-int8.mlp");
    fs::write(&int8_path, int8).unwrap();
    (f32_path, int8_path)
}

fn connect(board: EmulatedBoard, elf: &Path, model: Option<&Path>) -> Board {
    Board::connect(&Target::Qemu {
        board,
        firmware: elf.to_path_buf(),
        model: model.map(Path::to_path_buf),
    })
    .expect("connect to the emulated board")
}

/// A frame with this message and a correct CRC-32 (for requests the encoder cannot
/// make: unknown ones).
fn frame_with_message(message: &[u8]) -> Vec<u8> {
    let (mut body, mut frame) = (vec![0u8; 64], vec![0u8; 64]);
    mlp_embedded::protocol::frame_message(message, &mut body, &mut frame)
        .unwrap()
        .to_vec()
}

fn request_frame(request: &Request) -> Vec<u8> {
    let (mut body, mut frame) = (vec![0u8; 4096], vec![0u8; 4096]);
    mlp_embedded::protocol::encode_frame(request, &mut body, &mut frame)
        .unwrap()
        .to_vec()
}

/// 200 test images through the board: bit-identical logits, the host's accuracy.
fn evaluate_on(board: &mut Board, model: &Path, test: &mlp_train::data::Dataset, what: &str) {
    let ModelStatus::Loaded(summary) = &board.info().model else {
        panic!("no model: {}", board.info())
    };
    assert_eq!(summary.layer_sizes.as_slice(), &[784, 100, 200, 10]);
    let host = HostModel::load(model).unwrap();
    let result = evaluate(board, &host, test, Some(IMAGES)).unwrap();
    println!("{what}:\n{result}");
    assert_eq!(result.inputs, IMAGES);
    assert_eq!(result.mismatched, 0, "{result}");
    assert_eq!(result.correct, result.host_correct, "{result}");
    // Three epochs reach about 90% on these images; a broken model is near 10%.
    assert!(result.correct >= IMAGES * 3 / 4, "{result}");
}

/// Every kind of bad frame gets its error answer, and the next request its answer.
fn bad_frames(board: &mut Board, test: &mlp_train::data::Dataset) {
    let image = test.image(0);
    let good = request_frame(&Request::PredictPixels(image));
    let Reply::Prediction(expected) = board.raw_exchange(&good).unwrap() else {
        panic!("no prediction")
    };
    let limit = board.info().max_request_frame as usize;
    let mut truncated = good[..good.len() / 2].to_vec();
    truncated.push(0);
    let oversized: Vec<u8> = (0..limit + 100)
        .map(|i| 1 + (i % 200) as u8)
        .chain([0])
        .collect();
    let cases: Vec<(&str, Vec<u8>, ErrorAnswer)> = vec![
        (
            "garbage",
            b"hello, board\n\0".to_vec(),
            ErrorAnswer::Garbled,
        ),
        ("truncated", truncated, ErrorAnswer::Garbled),
        (
            "oversized",
            oversized,
            ErrorAnswer::TooLong {
                limit: limit as u32,
            },
        ),
        (
            "wrong image length",
            request_frame(&Request::PredictPixels(&image[..783])),
            ErrorAnswer::WrongInputLength {
                expected: 784,
                found: 783,
            },
        ),
        (
            "unknown request",
            frame_with_message(&[0x2a, 0x01]),
            ErrorAnswer::Malformed,
        ),
    ];
    for (name, bytes, error) in cases {
        let answer = board.raw_exchange(&bytes).unwrap();
        assert_eq!(answer, Reply::Error(error), "{name}");
        let again = board.raw_exchange(&good).unwrap();
        assert_eq!(again, Reply::Prediction(expected.clone()), "after {name}");
    }
}

/// An empty model region: Info says why, predictions are refused.
fn empty_region(board: EmulatedBoard, elf: &Path, test: &mlp_train::data::Dataset) {
    let mut board = connect(board, elf, None);
    let ModelStatus::Missing(reason) = &board.info().model else {
        panic!("a model in an empty region: {}", board.info())
    };
    assert!(reason.contains("not a model file"), "{reason}");
    let error = board.predict_pixels(test.image(0)).unwrap_err().to_string();
    assert!(error.contains("no valid model"), "{error}");
}

#[test]
fn the_boards_serve_the_protocol_in_qemu() {
    let stm32f4 = firmware(EmulatedBoard::Stm32f4, "stm32f4");
    let microbit = firmware(EmulatedBoard::Microbit, "microbit");
    let dir = tempfile::tempdir().unwrap();
    let (f32_model, int8_model) = models(dir.path());
    let test = load_split(&workspace().join("data/mnist-digits"), Split::Test, None).unwrap();

    let mut board = connect(EmulatedBoard::Stm32f4, &stm32f4, Some(&f32_model));
    evaluate_on(&mut board, &f32_model, &test, "stm32f4, f32 model");
    bad_frames(&mut board, &test);
    drop(board);
    let mut board = connect(EmulatedBoard::Stm32f4, &stm32f4, Some(&int8_model));
    evaluate_on(&mut board, &int8_model, &test, "stm32f4, int8 model");
    drop(board);
    empty_region(EmulatedBoard::Stm32f4, &stm32f4, &test);

    // The micro:bit's 256 KB of flash hold the int8 model only.
    let mut board = connect(EmulatedBoard::Microbit, &microbit, Some(&int8_model));
    evaluate_on(&mut board, &int8_model, &test, "micro:bit, int8 model");
    bad_frames(&mut board, &test);
    drop(board);
    empty_region(EmulatedBoard::Microbit, &microbit, &test);
}

/// Builds the STM32F4 firmware for models of `layers` (`MLP_LAYERS`) and returns its
/// ELF; then builds the default one again, so that `boards/target`, which `board
/// --qemu` runs when given no `--firmware`, holds the default firmware afterwards.
fn stm32f4_firmware_for(layers: &str) -> PathBuf {
    let elf = build_board(
        "stm32f4",
        &format!("stm32f4-{}", layers.replace(',', "-")),
        &[("MLP_LAYERS", layers.to_owned())],
    );
    firmware(EmulatedBoard::Stm32f4, "stm32f4");
    elf
}

/// The test split of the bundled table through the board, with `model` in its model
/// region: every logit equal to the host's, the host's accuracy.
fn evaluate_table_on(
    elf: &Path,
    model: &Path,
    source: &TableSource,
    what: &str,
) -> (BoardEvaluation, FeatureRows) {
    let train = workspace().join("data/breast-cancer/train.csv");
    let host = HostModel::load(model).unwrap();
    let rows = table_rows(&host, &train, source, RowsOf::TestSplit).unwrap();
    let mut board = connect(EmulatedBoard::Stm32f4, elf, Some(model));
    let ModelStatus::Loaded(summary) = &board.info().model else {
        panic!("no model: {}", board.info())
    };
    assert_eq!(summary.layer_sizes.as_slice(), &[30, 16, 2]);
    let result = evaluate_rows(&mut board, &host, &rows, None).unwrap();
    println!("{what}:\n{result}");
    assert_eq!(result.inputs, 114, "the bundled test file's rows");
    assert_eq!(result.mismatched, 0, "{result}");
    assert_eq!(result.correct, result.host_correct, "{result}");
    // A few epochs reach about 97% on these rows; answering the larger class (benign)
    // every time is 63%.
    assert!(result.correct >= 100, "{result}");
    (result, rows)
}

#[test]
fn a_tabular_model_runs_on_the_stm32f4_in_qemu() {
    let elf = stm32f4_firmware_for("30,16,2");
    let data = workspace().join("data/breast-cancer");
    let source = TableSource {
        test: Some(data.join("test.csv")),
        ..TableSource::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        data_dir: data.join("train.csv"),
        table: Some(source.clone()),
        hidden: vec![16],
        epochs: 5,
        ..TrainConfig::default()
    };
    let options = RunOptions {
        out_dir: dir.path().join("run"),
        resume: None,
        stop_after: None,
        verbose: false,
    };
    let report = mlp_train::train::run(config, &options).expect("train with mlp-train");
    let trained_path = report.model_path.expect("the run wrote a model");
    let trained = Mlp::load(&trained_path).unwrap();

    // The same network with the training split's standardization stored in the file
    // (format version 3), as the device applies it to raw values; and its int8
    // quantization, calibrated on the training file's raw rows.
    let t = load_table_splits(
        &data.join("train.csv"),
        &source,
        None,
        None,
        mlp_train::data::TableInputs::Standardized,
    )
    .unwrap();
    let mut standardized = trained.clone();
    standardized.input = Input::Standardized {
        offsets: t.normalization.offset.clone(),
        scales: t.normalization.scale.clone(),
    };
    let standardized_path = dir.path().join("standardized.mlp");
    standardized.save(&standardized_path).unwrap();
    let int8 = mlp_train::quantize::quantize_features_of(&standardized, &t.table.values)
        .expect("the quantizer takes a model of standardized features");
    let int8_path = dir.path().join("standardized-int8.mlp");
    fs::write(&int8_path, int8).unwrap();

    // Raw values in, the device standardizes them.
    let (f32_result, raw) = evaluate_table_on(
        &elf,
        &standardized_path,
        &source,
        "stm32f4, 30-16-2 f32, standardized on the device",
    );
    assert!(!raw.standardized_on_host);
    let (_, int8_raw) = evaluate_table_on(
        &elf,
        &int8_path,
        &source,
        "stm32f4, 30-16-2 int8, standardized on the device",
    );
    assert_eq!(int8_raw.values, raw.values);
    // The trained file itself, whose input transform is the features as given if the
    // trainer does not store its standardization: then the host standardizes.
    let (trained_result, sent) = evaluate_table_on(
        &elf,
        &trained_path,
        &source,
        "stm32f4, 30-16-2 f32, as trained",
    );
    // Standardizing on the device or on the host: the same arithmetic, the same logits.
    let bits = |path: &Path, rows: &FeatureRows| {
        HostModel::load(path)
            .unwrap()
            .feature_logit_bits(&rows.values, rows.features)
            .unwrap()
    };
    assert_eq!(bits(&standardized_path, &raw), bits(&trained_path, &sent));
    assert_eq!(f32_result.correct, trained_result.correct);

    // A model of this table that the firmware's buffers cannot hold: refused, with the
    // build line that makes a firmware for it.
    let wide = Mlp::zeroed(&[30, 300, 2]).unwrap();
    let wide_path = dir.path().join("wide.mlp");
    wide.save(&wide_path).unwrap();
    let host = HostModel::load(&wide_path).unwrap();
    let mut board = connect(EmulatedBoard::Stm32f4, &elf, Some(&wide_path));
    let error = format!(
        "{:#}",
        evaluate_rows(&mut board, &host, &raw, None).unwrap_err()
    );
    assert!(
        error.contains("layer 0 has 300 outputs, the activation buffers hold 256"),
        "{error}"
    );
    assert!(error.contains("MLP_LAYERS=30,300,2"), "{error}");
    drop(board);

    // A model of pixels, or of another number of features, is refused on the host.
    let pixels = Mlp::zeroed(&[784, 16, 2]).unwrap();
    let pixels_path = dir.path().join("pixels.mlp");
    pixels.save(&pixels_path).unwrap();
    let error = table_rows(
        &HostModel::load(&pixels_path).unwrap(),
        &data.join("train.csv"),
        &source,
        RowsOf::TestSplit,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("a model of pixels (images) cannot classify CSV rows"),
        "{error}"
    );
    let mut narrow = Mlp::zeroed(&[29, 16, 2]).unwrap();
    narrow.input = Input::Features;
    let narrow_path = dir.path().join("narrow.mlp");
    narrow.save(&narrow_path).unwrap();
    let error = table_rows(
        &HostModel::load(&narrow_path).unwrap(),
        &data.join("train.csv"),
        &source,
        RowsOf::TestSplit,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("the model takes 29 inputs but"), "{error}");
    assert!(error.contains("has 30 per example"), "{error}");
}
