//! # protobrain hdl
//!
//! The RTL of protobrain in rust-hdl. Every block is built at run time from a
//! [`spec::Config`] (per-column blocks live in `Vec`s, loops in `#[hdl_gen]` are bounded by
//! `.len()`), so one binary emits Verilog for any DIM and memory size.
