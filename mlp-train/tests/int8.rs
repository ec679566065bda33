//! int8 models end to end on real digits: train → quantize → evaluate and predict with
//! integer-only inference, within half a percentage point of the f32 source.

use crate::common::*;
use std::path::Path;

/// `accuracy: 95.40% (954/1000), loss …` → 0.954.
fn evaluate_accuracy(model: &Path) -> f64 {
    let out = ok(&run(["evaluate", "--model", model.to_str().unwrap()]));
    let line = out
        .lines()
        .find(|l| l.starts_with("accuracy: "))
        .expect("an accuracy line");
    line["accuracy: ".len()..]
        .split('%')
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 100.0
}

#[test]
fn quantized_model_keeps_its_accuracy_on_the_bundled_digits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let f32_model = train_bundled(&out, 5, &[]);
    let int8_model = out.join("model-int8.mlp");
    let said = ok(&run(["quantize", "--model", f32_model.to_str().unwrap()]));
    assert!(said.contains("model-int8.mlp"), "{said}");

    let f32_accuracy = evaluate_accuracy(&f32_model);
    let int8_accuracy = evaluate_accuracy(&int8_model);
    eprintln!("bundled digits test accuracy: f32 {f32_accuracy:.4}, int8 {int8_accuracy:.4}");
    // Five epochs reach 89.90% (f32 and int8), the same on every CPU: one arithmetic.
    // The floor is 4.9 points below: what a model that learned at all reaches, far
    // above the 10% of a broken one.
    assert!(f32_accuracy > 0.85, "the f32 model learned: {f32_accuracy}");
    // Not an arithmetic tolerance: f32 and int8 are two models, and this is the
    // quantizer's quality goal: at most half a point lost to quantization. Both
    // accuracies are exact, the same on every CPU; they are equal today, so the bound
    // leaves the quantizer room to change, not the arithmetic room to drift (that is
    // pinned bit for bit by the golden digests and the host/device parity tests).
    assert!(
        f32_accuracy - int8_accuracy <= 0.005,
        "int8 loses more than 0.5 points: {f32_accuracy} -> {int8_accuracy}"
    );

    // The file: version 3 (the trainer stores the digits' names), int8, the f32 model's
    // names, at most 26% of the f32 model's bytes.
    let f32_bytes = std::fs::read(&f32_model).unwrap();
    let int8_bytes = std::fs::read(&int8_model).unwrap();
    let view = mlp_core::format::ModelView::decode(&int8_bytes).unwrap();
    assert_eq!(view.version(), 3);
    assert_eq!(view.element_type(), mlp_core::format::ElementType::Int8);
    let names: Vec<&str> = view.class_names().unwrap().iter().collect();
    assert_eq!(names, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assert!(
        int8_bytes.len() * 100 <= f32_bytes.len() * 26,
        "{} vs {}",
        int8_bytes.len(),
        f32_bytes.len()
    );
    let inspected = ok(&run(["inspect", int8_model.to_str().unwrap()]));
    assert!(inspected.contains("Int8"), "{inspected}");
    // mlp-embedded's account (Int8Scratch<200>): two 200-byte buffers and 200 int32
    // accumulators; the SMLAD kernel's 64 pairs and 2 end markers × 12 bytes of stack.
    assert!(inspected.contains("RAM:         1200 bytes"), "{inspected}");
    assert!(inspected.contains("+ 792 bytes of stack"), "{inspected}");

    // predict: a real test digit, the same class from both models.
    let images = mlp_train::idx::read_images(&bundled().join("t10k-images-idx3-ubyte.gz")).unwrap();
    let digit = dir.path().join("digit.pgm");
    std::fs::write(
        &digit,
        [b"P5\n28 28\n255\n".as_slice(), images.image(0)].concat(),
    )
    .unwrap();
    let class = |model: &Path| {
        let said = ok(&run([
            "predict",
            "--model",
            model.to_str().unwrap(),
            digit.to_str().unwrap(),
        ]));
        said.split("class ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(class(&f32_model), class(&int8_model));

    // A corrupt int8 model is named and refused.
    let mut corrupt = int8_bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    let bad = dir.path().join("bad-int8.mlp");
    std::fs::write(&bad, corrupt).unwrap();
    fails(
        &run(["evaluate", "--model", bad.to_str().unwrap()]),
        &["bad-int8.mlp", "checksum"],
    );
    // quantize refuses an int8 model as its source.
    fails(
        &run([
            "quantize",
            "--model",
            int8_model.to_str().unwrap(),
            "--out",
            dir.path().join("x.mlp").to_str().unwrap(),
        ]),
        &["model-int8.mlp"],
    );
}
