//! Properties of the CSV reader and the stratified split on generated tables: any
//! table of finite `f32` values written as CSV reads back to the same values and
//! classes; a written table read as its own test file gives the same labels; the split
//! is a partition that takes every class's share and keeps every class.

use std::path::Path;

use mlp_data::table::{self, LabelColumn, Share};
use proptest::prelude::*;

/// Finite `f32`s of every magnitude, subnormals and signed zeros included.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>().prop_filter("finite", |v| v.is_finite()),
        (-1000i32..1000).prop_map(|v| v as f32 / 8.0),
        Just(-0.0f32),
    ]
}

/// (features, rows of values, labels as text) with 1..6 features and 1..40 rows;
/// labels are integers or names.
fn table_text() -> impl Strategy<Value = (usize, Vec<f32>, Vec<String>)> {
    (1usize..6, 1usize..40, any::<bool>()).prop_flat_map(|(features, rows, names)| {
        let label = if names {
            prop::sample::select(vec!["benign", "malignant", "x,y", "\"quoted\"", "émoji ✓"])
                .prop_map(str::to_owned)
                .boxed()
        } else {
            (0u16..256).prop_map(|v| v.to_string()).boxed()
        };
        (
            Just(features),
            prop::collection::vec(value(), features * rows),
            prop::collection::vec(label, rows),
        )
    })
}

fn csv_text(features: usize, values: &[f32], labels: &[String]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = (0..features).map(|i| format!("f{i}")).collect();
    header.push("label".into());
    w.write_record(&header).unwrap();
    for (row, label) in values.chunks(features).zip(labels) {
        let mut cells: Vec<String> = row.iter().map(|v| format!("{v:e}")).collect();
        cells.push(label.clone());
        w.write_record(&cells).unwrap();
    }
    w.into_inner().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn written_tables_read_back((features, values, labels) in table_text()) {
        let text = csv_text(features, &values, &labels);
        let name = Path::new("p.csv");
        let t = table::parse_training(&text, name, &LabelColumn::Last, 1).unwrap();
        prop_assert_eq!(t.features(), features);
        prop_assert_eq!(t.len(), labels.len());
        // Bit for bit: -0.0 stays -0.0, every value is the one written.
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&t.values), bits(&values));
        // The classes are the labels: names sorted byte-wise, or the integers.
        for (class, text) in t.labels.iter().zip(&labels) {
            match t.classes.names() {
                Some(names) => prop_assert_eq!(&names[usize::from(*class)], text),
                None => prop_assert_eq!(class.to_string(), text.clone()),
            }
        }
        if let Some(names) = t.classes.names() {
            prop_assert!(names.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
        }
        // Its own test file, and its own CSV form, read the same.
        let test = table::parse_test(&text, Path::new("q.csv"), &t).unwrap();
        prop_assert_eq!(&test.labels, &t.labels);
        let again = table::parse_training(&t.to_csv(), name, &LabelColumn::Last, 1).unwrap();
        prop_assert_eq!(bits(&again.values), bits(&t.values));
        prop_assert_eq!(&again.labels, &t.labels);
    }

    #[test]
    fn split_partitions_every_class(
        labels in prop::collection::vec(0u8..5, 1..300),
        ppm in 1u32..1_000_000,
        seed in any::<u64>(),
    ) {
        let share = Share::PartsPerMillion(ppm);
        let (kept, taken) = table::stratified_split(&labels, 5, share, seed);
        let mut all = [kept.clone(), taken.clone()].concat();
        all.sort_unstable();
        prop_assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
        let total = share.of(labels.len());
        prop_assert!(taken.len() <= total);
        for c in 0..5u8 {
            let n = labels.iter().filter(|&&l| l == c).count();
            let t = taken.iter().filter(|&&i| labels[i] == c).count();
            if n > 0 {
                // Every class stays in the kept part, and gives its proportional share
                // (rounded down or up) unless that would empty it.
                prop_assert!(t < n);
                let exact = total * n / labels.len();
                prop_assert!(
                    t == n - 1 || t == exact || t == exact + 1,
                    "class {} of {} rows gave {}, its share is {}", c, n, t, exact
                );
            }
        }
        prop_assert_eq!(table::stratified_split(&labels, 5, share, seed).1, taken);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        match table::parse_training(&bytes, Path::new("any.csv"), &LabelColumn::Last, 1) {
            Ok(t) => prop_assert_eq!(t.values.len(), t.len() * t.features()),
            Err(e) => prop_assert!(e.to_string().starts_with("any.csv: ")),
        }
    }
}
