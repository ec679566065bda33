//! Class names in the model file: the trainer stores the digits' and Fashion-MNIST's,
//! and `inspect`, `evaluate` and `predict` show them; `predict --json` and `--logits`
//! print every raw logit exactly.

use crate::common::*;

use mlp_train::data::{class_names, FASHION_NAMES};
use mlp_train::model::Mlp;

#[test]
fn fashion_mnist_is_recognised_by_its_labels_gzipped_or_not() {
    let names = class_names(&fashion()).unwrap();
    assert_eq!(names, FASHION_NAMES);
    let digits: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    assert_eq!(class_names(&bundled()).unwrap(), digits);
    assert_eq!(
        class_names(mlp_train::data::BUNDLED.as_ref()).unwrap(),
        digits
    );

    // The same labels decompressed are recognised; one label changed is not
    // Fashion-MNIST.
    let dir = tempfile::tempdir().unwrap();
    let labels =
        mlp_train::idx::read_labels(&fashion().join("train-labels-idx1-ubyte.gz"), 10).unwrap();
    let plain = dir.path().join("train-labels-idx1-ubyte");
    std::fs::write(&plain, mlp_train::idx::encode_labels(&labels)).unwrap();
    assert_eq!(class_names(dir.path()).unwrap(), FASHION_NAMES);
    let mut changed = labels.clone();
    changed[0] = (changed[0] + 1) % 10;
    std::fs::write(&plain, mlp_train::idx::encode_labels(&changed)).unwrap();
    assert_eq!(class_names(dir.path()).unwrap(), digits);
}

#[test]
fn commands_show_the_names_and_predict_prints_exact_logits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let model_path = train_bundled(&out, 1, &["--hidden", "16"]);
    let model = Mlp::load(&model_path).unwrap();
    let digits: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    assert_eq!(model.class_names.as_ref(), Some(&digits));

    let inspected = ok(&run(["inspect", model_path.to_str().unwrap()]));
    assert!(
        inspected.contains("classes:     10: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"),
        "{inspected}"
    );
    assert!(
        inspected.contains("input:       pixels (x / 255)"),
        "{inspected}"
    );
    assert!(inspected.contains("format:      version 3"), "{inspected}");

    // A model renamed by hand: evaluate's per-class lines carry the names.
    let mut renamed = model.clone();
    renamed.class_names = Some(FASHION_NAMES.iter().map(|n| n.to_string()).collect());
    let renamed_path = dir.path().join("renamed.mlp");
    renamed.save(&renamed_path).unwrap();
    let report = ok(&run([
        "evaluate",
        "--model",
        renamed_path.to_str().unwrap(),
    ]));
    let rows: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("class "))
        .skip(1)
        .take(10)
        .collect();
    for (row, name) in rows.iter().zip(FASHION_NAMES) {
        assert!(row.starts_with(name), "{row} should name {name}");
    }
    let json = ok(&run([
        "evaluate",
        "--json",
        "--model",
        renamed_path.to_str().unwrap(),
    ]));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["classes"][9]["name"], "Ankle boot");

    // predict: the name, and the logits as the shortest decimals that read back to the
    // same f32 bits the host computes.
    let images = mlp_train::idx::read_images(&bundled().join("t10k-images-idx3-ubyte.gz")).unwrap();
    let digit = dir.path().join("digit.pgm");
    std::fs::write(
        &digit,
        [b"P5\n28 28\n255\n".as_slice(), images.image(0)].concat(),
    )
    .unwrap();
    let inputs = mlp_train::image_input::load_mnist_inputs(&digit).unwrap();
    let host = renamed.logits_one(&inputs).unwrap();
    let class = mlp_core::loss::argmax(&host);
    let line = ok(&run([
        "predict",
        "--json",
        "--model",
        renamed_path.to_str().unwrap(),
        digit.to_str().unwrap(),
    ]));
    let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(value["class"], class);
    assert_eq!(value["name"], FASHION_NAMES[class]);
    let logits: Vec<f32> = value["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse().unwrap())
        .collect();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&logits), bits(&host));
    let printed_bits: Vec<u32> = value["logit_bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u32::from_str_radix(v.as_str().unwrap(), 16).unwrap())
        .collect();
    assert_eq!(printed_bits, bits(&host));

    let line = ok(&run([
        "predict",
        "--logits",
        "--model",
        renamed_path.to_str().unwrap(),
        digit.to_str().unwrap(),
    ]));
    let listed: Vec<f32> = line
        .split("logits ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(bits(&listed), bits(&host));
    assert!(
        line.contains(&format!("class {class} {:?}", FASHION_NAMES[class])),
        "{line}"
    );
    let text = ok(&run([
        "predict",
        "--model",
        renamed_path.to_str().unwrap(),
        digit.to_str().unwrap(),
    ]));
    assert!(
        text.contains(&format!("class {class} {:?} (", FASHION_NAMES[class])),
        "{text}"
    );

    // An int8 model keeps the names and prints its int32 logits.
    ok(&run([
        "quantize",
        "--model",
        renamed_path.to_str().unwrap(),
    ]));
    let int8_path = dir.path().join("renamed-int8.mlp");
    let line = ok(&run([
        "predict",
        "--json",
        "--model",
        int8_path.to_str().unwrap(),
        digit.to_str().unwrap(),
    ]));
    let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(value["element"], "int8");
    let int8 = mlp_train::quantize::Int8Model::load(&int8_path).unwrap();
    let expected: Vec<i32> =
        int8.with_predictor(|predict, _| predict(&mlp_train::quantize::pixel_bytes(&inputs)));
    let printed: Vec<i64> = value["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(
        printed,
        expected.iter().map(|&v| i64::from(v)).collect::<Vec<_>>()
    );
    assert_eq!(
        value["name"],
        FASHION_NAMES[mlp_core::quant::argmax_i32(&expected)]
    );
}
