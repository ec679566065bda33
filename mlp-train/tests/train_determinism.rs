//! The same seed and data give a byte-identical model file; another seed does not.

use crate::common::*;

#[test]
fn same_seed_gives_identical_model_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let model = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let mut args = quick_fashion(&out, 4000, 2);
        args.extend(["--seed".into(), seed.into()]);
        ok(&run(&args));
        std::fs::read(out.join("model.mlp")).unwrap()
    };
    let a = model("a", "7");
    let b = model("b", "7");
    let c = model("c", "8");
    assert!(a == b, "two runs with seed 7 wrote different model files");
    assert!(a != c, "seeds 7 and 8 wrote the same model file");
}
