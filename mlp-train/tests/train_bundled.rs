//! The README's main command: training on the bundled digits with the walkthrough's
//! defaults writes the model, the log and the chart, and prints the test accuracy.

use crate::common::*;

/// The SHA-256 of the model the README's main command writes (format version 3: the
/// digits' class names follow the parameters).
const README_MODEL_SHA256: &str =
    "46446b9939ab9e01f0da9a0a6397f03b02106901389940ba2780d86cb71e4e0e";

#[test]
fn default_training_on_bundled_digits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // All defaults (784-100-200-10, SGD 0.1, batch 32, 25 epochs, bundled digits);
    // only the output directory is redirected.
    let stdout = ok(&run(["--out", out.to_str().unwrap()]));
    assert!(stdout.contains("epoch  25/25"), "{stdout}");
    let acc = test_accuracy(&stdout);
    // The README's figure, 95.80%, on every CPU (one arithmetic; the model's digest
    // below). The floor sits 1.8 points under it: a model that learned at all.
    assert!(acc >= 0.94, "test accuracy {acc} on the bundled digits");
    assert_eq!(
        files_in(&out),
        [
            "checkpoint.ckpt",
            "curves.svg",
            "metrics.csv",
            "model.mlp",
            "summary.json"
        ]
    );
    let model = mlp_train::model::Mlp::load(&out.join("model.mlp")).unwrap();
    assert_eq!(model.sizes(), [784, 100, 200, 10]);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 26);
    assert!(csv.starts_with(mlp_train::metrics::CSV_HEADER));
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // The model file is the core's format: the core decodes it, and `evaluate` gives
    // the figure the trainer printed.
    let bytes = std::fs::read(out.join("model.mlp")).unwrap();
    // The same bytes whatever the CPU, its instruction set and its cores (the
    // shorter runs of golden/models.txt check every instruction set; this one, too
    // slow for the portable path, the fastest this CPU runs).
    use sha2::Digest;
    assert_eq!(
        format!("{:x}", sha2::Sha256::digest(&bytes)),
        README_MODEL_SHA256,
        "the main command's model differs from the README's"
    );
    let view = mlp_core::format::ModelView::decode(&bytes).unwrap();
    assert_eq!(view.layer_sizes(), [784, 100, 200, 10]);
    let eval = ok(&run([
        "evaluate",
        "--model",
        out.join("model.mlp").to_str().unwrap(),
    ]));
    let pct = format!("{:.2}%", 100.0 * acc);
    assert!(eval.contains(&format!("accuracy: {pct}")), "{eval}");
}
