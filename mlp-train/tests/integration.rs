//! The trainer's integration tests, one module per file, built as one test binary:
//! each binary links the whole trainer and its dependencies, so one binary instead of
//! one per file saves most of the tests' link time. Run one file's tests with its
//! module as the filter: `cargo test -p mlp-train --test integration same_bytes::`.

mod common;

mod class_names;
mod every_command_sweep;
mod flags_and_records;
mod hardening;
mod int8;
mod int8_features;
mod optim_steps;
mod outputs_and_signals;
mod predict_photos;
mod prop_idx;
mod resume_changes;
mod same_bytes;
mod train_augment;
mod train_bad_inputs;
mod train_bundled;
mod train_commands;
mod train_csv;
mod train_determinism;
mod train_download;
mod train_features;
mod train_resume;
