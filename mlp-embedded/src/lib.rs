//! Prediction on microcontrollers with `mlp-core` models (being built; see the embedded issue).
#![no_std]
