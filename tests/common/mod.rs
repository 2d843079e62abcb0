//! Helpers shared by the CLI integration tests: run the binary, write `.npy` inputs.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::process::Command;

use npyz::{Order, WriterBuilder};

/// The result of one run of the binary.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `protobrain` with `args`.
pub fn protobrain(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_protobrain")).args(args).output().expect("run protobrain");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Write a `.npy` array of any numpy-compatible type and shape, data in the given order.
pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], order: Order, data: &[T]) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .order(order)
        .shape(shape)
        .writer(&mut f)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}
