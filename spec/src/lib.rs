//! # protobrain spec
//!
//! The single source of truth shared by the hardware generator, the simulators and the driver:
//! the [`Config`], the bit-exact arithmetic ([`arith`]), the nalgebra golden model
//! ([`golden`]), the command encoding ([`isa`]) and the functional golden device
//! ([`device`]). See `docs/architecture.md` and `docs/protocol.md`.

pub mod config;

pub use config::{Config, ConfigError, VERSION};
