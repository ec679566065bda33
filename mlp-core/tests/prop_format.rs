//! Property tests of the model format: any valid shape and contents round-trip
//! exactly, and no single-byte change slips through as a different valid model.

use mlp_core::format::{encode, encoded_len, f32_payload_len, ElementType, ModelView, MAX_LAYERS};
use proptest::prelude::*;

fn encode_f32(sizes: &[u32], values: &[f32]) -> Vec<u8> {
    let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut file = vec![0; encoded_len(sizes, payload.len()).unwrap()];
    let used = encode(sizes, ElementType::F32, &payload, &mut file).unwrap();
    assert_eq!(used, file.len());
    file
}

/// Layer sizes within the format's limits, small enough to keep each case fast.
fn layer_sizes() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(1u32..40, 2..=MAX_LAYERS.min(6) + 1)
}

/// Sizes and a payload of arbitrary f32 bit patterns (NaN and infinities included: the
/// format stores bits, validity of the numbers is the device loader's business).
fn model() -> impl Strategy<Value = (Vec<u32>, Vec<f32>)> {
    layer_sizes().prop_flat_map(|sizes| {
        let count = f32_payload_len(&sizes).unwrap() / 4;
        (
            Just(sizes),
            prop::collection::vec(any::<u32>().prop_map(f32::from_bits), count),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_keeps_sizes_and_every_bit((sizes, values) in model()) {
        let file = encode_f32(&sizes, &values);
        let view = ModelView::decode(&file).unwrap();
        prop_assert_eq!(view.layer_sizes(), &sizes[..]);
        let decoded: Vec<u32> = view
            .layers()
            .flat_map(|layer| layer.weights.chunks_exact(4).chain(layer.bias.chunks_exact(4)).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>())
            .collect();
        let original: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(decoded, original);
        let offset = view.payload().as_ptr() as usize - file.as_ptr() as usize;
        prop_assert_eq!(offset % 4, 0);
    }

    #[test]
    fn a_changed_byte_never_passes_as_another_model(
        (sizes, values) in model(),
        position in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let file = encode_f32(&sizes, &values);
        let mut changed = file.clone();
        let at = position.index(changed.len());
        changed[at] = changed[at].wrapping_add(delta);
        if let Ok(view) = ModelView::decode(&changed) {
            // Only possible if the change kept an equivalent file (say a different
            // spelling of the same varint): the same model, sizes and parameters.
            let original = ModelView::decode(&file).unwrap();
            prop_assert_eq!(view.layer_sizes(), original.layer_sizes());
            prop_assert_eq!(view.element_type(), original.element_type());
            prop_assert_eq!(view.payload(), original.payload());
        }
    }
}
