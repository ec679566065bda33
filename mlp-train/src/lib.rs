//! The desktop side of the project: loads MNIST-format data or CSV tables, trains `mlp-core`
//! networks with the host kernels of `mlp-kernels`, writes model files the firmware
//! loads, and uses them (evaluate, predict, inspect).
//!
//! # Modules
//! - [`idx`], [`image_input`]: the IDX file reader and the image path of `predict`,
//!   from `mlp-data` (re-exported).
//! - [`data`]: data directories, train/validation/test splits, the bundled digits; CSV
//!   tables, their stratified splits and standardization.
//! - [`download`]: fetching full MNIST with SHA-256 checks.
//! - [`model`]: the network's parameters in model-file order; loading and saving.
//! - [`augment`]: random shifts, rotations and scalings of the training images
//!   (`train --augment`), the same bytes on every machine.
//! - [`optim`]: SGD, momentum, Nesterov, Adam; learning-rate schedules.
//! - [`train`]: the training loop ([`train::Training`]), early stopping, divergence
//!   checks, the run's files.
//! - [`checkpoint`]: saving and resuming a run's complete state.
//! - [`metrics`]: batched evaluation, confusion matrix, the CSV log.
//! - [`plot`]: the accuracy and loss chart (SVG).
//! - [`summary`]: `summary.json` and `evaluate --json`.
//! - [`show`], [`inspect`]: the `show` and `inspect` commands' output.
//! - [`fsio`]: atomic file writes that never replace a device, FIFO or link.
//! - [`output`]: standard output that never panics (closed pipe, full device).
//! - [`interrupt`]: Ctrl-C during training.
//! - [`bench`](mod@bench): the `bench` command (fast kernels against NumPy).
//! - [`board`]: the `board` command, the host side of the serial protocol (serial port,
//!   TCP, or QEMU started for an emulated board).
//! - [`cli`]: the command line.

pub mod augment;
pub mod bench;
pub mod board;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod download;
pub mod fsio;
pub mod inspect;
pub mod interrupt;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod output;
pub mod plot;
pub mod quantize;
pub mod show;
pub mod summary;
pub mod train;

pub use mlp_data::{idx, image_input};
