//! Whole training steps, evaluation and prediction on every kernel this CPU runs, on
//! 1 to 3 threads, against the scalar reference of the arithmetic, bit for bit; and
//! the analytic gradients against finite differences.

mod common;

use common::{all_kernels, assert_bits, Rng};
use mlp_core::init::xavier_normal;
use mlp_core::network::{layer_ranges, pixel_value};
use mlp_kernels::{evaluate, reference, Batch, Inputs, Kernels, Predictor, Trainer, Update};

/// Network shapes: with a split first layer (≥ 32 inputs) and without, one layer and
/// several, widths that are and are not multiples of every vector width.
fn shapes() -> Vec<Vec<usize>> {
    if cfg!(miri) {
        vec![vec![33, 5, 3], vec![7, 3]]
    } else {
        vec![
            vec![784, 100, 200, 10],
            vec![64, 17, 3],
            vec![33, 40, 9, 12, 4],
            vec![20, 7],
            vec![31, 1, 2],
        ]
    }
}

fn threads() -> Vec<usize> {
    if cfg!(miri) {
        vec![2]
    } else {
        vec![1, 2, 3]
    }
}

/// A network with Xavier weights and small non-zero biases.
fn network(sizes: &[usize], rng: &mut Rng) -> Vec<f32> {
    let total = layer_ranges(sizes).last().map_or(0, |l| l.bias.end);
    let mut params = vec![0.0; total];
    for l in layer_ranges(sizes) {
        xavier_normal(
            &mut params[l.weights.clone()],
            l.inputs,
            l.outputs,
            &mut || rng.next_u64(),
        );
        for b in &mut params[l.bias] {
            *b = 0.01 * rng.signed();
        }
    }
    params
}

/// A set of `n` examples as pixels and as the values they stand for, and labels.
fn data(sizes: &[usize], n: usize, rng: &mut Rng) -> (Vec<u8>, Vec<f32>, Vec<u8>) {
    let classes = *sizes.last().unwrap() as u64;
    let pixels = rng.pixels(n * sizes[0]);
    let values = pixels.iter().map(|&p| pixel_value(p)).collect();
    let labels = (0..n).map(|_| (rng.next_u64() % classes) as u8).collect();
    (pixels, values, labels)
}

/// Steps of every kind (SGD fused or gradients stored; rows given, gathered from
/// values or from pixels; a last partial batch) give the reference's parameters,
/// losses and counts, bit for bit, on every kernel and thread count.
#[test]
fn steps_match_the_reference_on_every_path_and_thread_count() {
    let mut rng = Rng::new(11);
    let batch = 8;
    for sizes in shapes() {
        let start = network(&sizes, &mut rng);
        let n = 2 * batch + 3;
        let (pixels, values, labels) = data(&sizes, n, &mut rng);
        let order: Vec<u32> = (0..n as u32).rev().collect();
        let features = sizes[0];
        for kernels in all_kernels() {
            // The reference: plain SGD on the first two batches, then stored gradients
            // (applied by a plain SGD step) on the partial third.
            let mut want = start.clone();
            let mut want_steps = Vec::new();
            for (q, chunk) in order.chunks(batch).enumerate() {
                let x: Vec<f32> = chunk
                    .iter()
                    .flat_map(|&i| values[i as usize * features..][..features].to_vec())
                    .collect();
                let y: Vec<u8> = chunk.iter().map(|&i| labels[i as usize]).collect();
                let mut grads = vec![0.0; want.len()];
                let stored = (q == 2).then_some(&mut grads[..]);
                let out = reference::train_step(kernels, &sizes, &mut want, &x, &y, 0.1, stored);
                if q == 2 {
                    reference::sgd_step(&mut want, &grads, 0.1);
                }
                want_steps.push(out);
            }
            for threads in threads() {
                for source in 0..3 {
                    let mut trainer = Trainer::new(kernels, &sizes, batch, threads).unwrap();
                    let mut params = start.clone();
                    let mut grads = vec![0.0; params.len()];
                    for (q, chunk) in order.chunks(batch).enumerate() {
                        let y: Vec<u8> = chunk.iter().map(|&i| labels[i as usize]).collect();
                        let x: Vec<f32> = chunk
                            .iter()
                            .flat_map(|&i| values[i as usize * features..][..features].to_vec())
                            .collect();
                        let b = match source {
                            0 => Batch::Rows(&x),
                            // The next batch's rows: noise here (it changes no result).
                            1 => Batch::Gather {
                                inputs: Inputs::Values(&values),
                                indices: chunk,
                                next: &order[..3],
                            },
                            _ => Batch::Gather {
                                inputs: Inputs::Pixels(&pixels),
                                indices: chunk,
                                next: &[],
                            },
                        };
                        let update = if q == 2 {
                            Update::Gradients(&mut grads)
                        } else {
                            Update::Sgd(0.1)
                        };
                        let out = trainer.step(&mut params, b, &y, update);
                        if q == 2 {
                            reference::sgd_step(&mut params, &grads, 0.1);
                        }
                        let what = format!(
                            "{kernels} {sizes:?} {threads} threads source {source} step {q}"
                        );
                        assert_eq!(
                            out.loss.to_bits(),
                            want_steps[q].loss.to_bits(),
                            "{what}: loss"
                        );
                        assert_eq!(out.correct, want_steps[q].correct, "{what}: correct");
                    }
                    let what = format!("{kernels} {sizes:?} {threads} threads source {source}");
                    assert_bits(&what, &params, &want);
                }
            }
        }
    }
}

/// Evaluation and single-example prediction give the reference's logits' numbers on
/// every kernel and thread count (and the loss does not depend on the thread count).
#[test]
fn evaluation_and_prediction_match_the_reference() {
    let mut rng = Rng::new(5);
    for sizes in shapes() {
        let params = network(&sizes, &mut rng);
        let n = if cfg!(miri) { 7 } else { 600 };
        let (pixels, values, labels) = data(&sizes, n, &mut rng);
        let classes = *sizes.last().unwrap();
        for kernels in all_kernels() {
            let logits = reference::logits(kernels, &sizes, &params, &values);
            // The reference's sums, batch by batch as `evaluate` adds them.
            let mut loss_sum = 0.0f64;
            let mut confusion = vec![0usize; classes * classes];
            for (rows, y) in logits
                .chunks(mlp_kernels::EVAL_BATCH * classes)
                .zip(labels.chunks(mlp_kernels::EVAL_BATCH))
            {
                let loss = mlp_core::loss::softmax_cross_entropy(rows, y, classes, None);
                loss_sum += f64::from(loss) * y.len() as f64;
                for (row, &label) in rows.chunks(classes).zip(y) {
                    confusion[usize::from(label) * classes + mlp_core::loss::argmax(row)] += 1;
                }
            }
            for threads in threads() {
                for inputs in [Inputs::Values(&values), Inputs::Pixels(&pixels)] {
                    let got = evaluate(kernels, &sizes, &params, inputs, &labels, threads).unwrap();
                    let what = format!("{kernels} {sizes:?} {threads} threads");
                    assert_eq!(got.loss_sum.to_bits(), loss_sum.to_bits(), "{what}: loss");
                    assert_eq!(got.confusion, confusion, "{what}: confusion");
                }
            }
            let mut predictor = Predictor::new(kernels, &sizes).unwrap();
            for (row, want) in values.chunks(sizes[0]).zip(logits.chunks(classes)).take(20) {
                assert_bits(
                    &format!("{kernels} {sizes:?} predict"),
                    predictor.logits(&params, row),
                    want,
                );
            }
        }
    }
}

/// The gradients a step stores are the loss's: central differences of the reference
/// loss agree with them, in both arithmetics.
#[test]
fn stored_gradients_match_finite_differences() {
    let sizes = [6, 5, 4, 3];
    let mut rng = Rng::new(7);
    let params = network(&sizes, &mut rng);
    let b = 4;
    let x = rng.values(b * sizes[0], 0.2);
    let labels = [0u8, 2, 1, 2];
    for kernels in [Kernels::Core, Kernels::best()] {
        let mut trainer = Trainer::new(kernels, &sizes, b, 1).unwrap();
        let mut grads = vec![0.0; params.len()];
        let mut p = params.clone();
        trainer.step(
            &mut p,
            Batch::Rows(&x),
            &labels,
            Update::Gradients(&mut grads),
        );
        assert_eq!(p, params, "storing gradients leaves the parameters alone");
        let loss = |p: &[f32]| {
            let mut p = p.to_vec();
            let mut g = vec![0.0; p.len()];
            f64::from(
                reference::train_step(kernels, &sizes, &mut p, &x, &labels, 0.0, Some(&mut g)).loss,
            )
        };
        let eps = 1e-2f32;
        // Under Miri every 7th parameter: each takes two reference steps.
        let every = if cfg!(miri) { 7 } else { 1 };
        for (i, &analytic) in grads.iter().enumerate().step_by(every) {
            let mut up = params.clone();
            up[i] += eps;
            let mut down = params.clone();
            down[i] -= eps;
            let numeric = (loss(&up) - loss(&down)) / (2.0 * f64::from(eps));
            let a = f64::from(analytic);
            assert!(
                (numeric - a).abs() <= 2e-3 + 2e-2 * a.abs(),
                "{kernels} parameter {i}: analytic {a}, numeric {numeric}"
            );
        }
    }
}

/// A step whose loss is not finite changes nothing and stores nothing.
#[test]
fn a_step_with_a_non_finite_loss_changes_nothing() {
    let sizes = [40, 8, 3];
    let mut rng = Rng::new(9);
    let mut params = network(&sizes, &mut rng);
    params[0] = f32::INFINITY;
    let x = vec![1.0f32; 4 * 40];
    for kernels in all_kernels() {
        for threads in threads() {
            let mut trainer = Trainer::new(kernels, &sizes, 4, threads).unwrap();
            let mut p = params.clone();
            let out = trainer.step(&mut p, Batch::Rows(&x), &[0, 1, 2, 0], Update::Sgd(0.1));
            assert!(!out.loss.is_finite(), "{kernels}");
            assert_bits(&format!("{kernels} {threads}"), &p, &params);
            let mut grads = vec![7.0; params.len()];
            trainer.step(
                &mut p,
                Batch::Rows(&x),
                &[0, 1, 2, 0],
                Update::Gradients(&mut grads),
            );
            assert!(
                grads.iter().all(|&g| g == 7.0),
                "{kernels}: gradients stored"
            );
        }
    }
}

/// An instruction set the CPU does not run is an error, not a silent fallback.
#[test]
fn an_unsupported_instruction_set_is_an_error() {
    for isa in mlp_kernels::Isa::ALL {
        let made = Trainer::new(Kernels::Fast(isa), &[4, 2], 2, 1);
        assert_eq!(made.is_ok(), isa.is_supported(), "{isa}");
        if let Err(e) = made {
            assert!(e.to_string().contains(isa.name()), "{e}");
        }
    }
}
