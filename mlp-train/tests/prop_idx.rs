//! Property tests of the IDX reader: random shapes and contents round-trip, plain and
//! gzip-compressed, and any truncation is an error, never a panic or a short read.

use mlp_train::idx::{encode_images, encode_labels, gzip, read_images, read_labels};
use proptest::prelude::*;

fn images() -> impl Strategy<Value = (u32, u32, u32, Vec<u8>)> {
    (0u32..20, 1u32..12, 1u32..12).prop_flat_map(|(count, rows, cols)| {
        let len = (count * rows * cols) as usize;
        (
            Just(count),
            Just(rows),
            Just(cols),
            prop::collection::vec(any::<u8>(), len),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn images_round_trip_plain_and_gzipped((count, rows, cols, pixels) in images(), compressed in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode_images(count, rows, cols, &pixels);
        let (name, contents) = if compressed { ("x.gz", gzip(&bytes)) } else { ("x", bytes) };
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let read = read_images(&path).unwrap();
        prop_assert_eq!((read.count, read.rows, read.cols), (count as usize, rows as usize, cols as usize));
        prop_assert_eq!(read.pixels, pixels);
    }

    #[test]
    fn labels_round_trip_and_range_is_checked(labels in prop::collection::vec(0u8..10, 0..50), classes in 1usize..12) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels");
        std::fs::write(&path, encode_labels(&labels)).unwrap();
        let result = read_labels(&path, classes);
        if labels.iter().all(|&l| usize::from(l) < classes) {
            prop_assert_eq!(result.unwrap(), labels);
        } else {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn every_truncation_is_an_error((count, rows, cols, pixels) in images(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_images(count, rows, cols, &pixels);
        let keep = cut.index(bytes.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut");
        std::fs::write(&path, &bytes[..keep]).unwrap();
        prop_assert!(read_images(&path).is_err(), "{} of {} bytes accepted", keep, bytes.len());
    }
}
