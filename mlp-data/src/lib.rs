//! Reading the trainer's inputs from files nobody vouches for, with errors that name
//! the file and the problem:
//! - [`idx`]: MNIST-format IDX files (images and labels, plain or gzip), and writing
//!   them (for tests and downloads' checks);
//! - [`image_input`]: an image of a digit (PNG or PGM) brought to MNIST's 28×28 form;
//! - [`table`]: CSV files of numeric features and a label column, and the seeded,
//!   stratified split of their rows.
//!
//! A crate of its own, apart from the trainer, so that the fuzz targets of these
//! parsers build without the trainer's command line, network and plotting
//! dependencies.
#![deny(missing_docs)]

pub mod idx;
pub mod image_input;
pub mod table;
