//! protobrain as a library: what the `protobrain` command line is built from and what other
//! programs and the integration tests call.
//!
//! * [`nn`]: the digits data set, a deterministic float MLP trainer, post-training int8
//!   quantisation for the device (through `driver::quant`), and the model file `model.json`.

pub mod nn;
