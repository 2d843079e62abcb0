//! `protobrain import`: an int8 ONNX model to a protobrain model file, so that `compile`,
//! `estimate`, `run` and `infer` take it as they take the project's own models.
//!
//! ```text
//!  model.onnx ── onnx::import_path ──► driver::Network ── nn::ModelFile ──► model.json
//! ```
//!
//! The model file holds the same network: the same codes, scales and zero points; its rows are
//! NHWC (docs/model-format.md), where the ONNX model takes NCHW images.

use std::path::PathBuf;

use clap::Args;
use protobrain::nn::ModelFile;

use crate::error::CliError;

/// Arguments of `protobrain import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ONNX model: int8, quantised by onnxruntime (QDQ or QOperator form; docs/onnx.md).
    #[arg(value_name = "model.onnx")]
    pub model: PathBuf,

    /// Where to write the protobrain model file (docs/model-format.md).
    #[arg(short, long, value_name = "model.json")]
    pub output: PathBuf,
}

/// Run the command.
pub fn run(args: &ImportArgs) -> Result<String, CliError> {
    crate::output::check_outputs(&[("--output", Some(&args.output))])?;
    let imported = onnx::import_path(&args.model).map_err(|e| CliError::file(&args.model, e.to_string()))?;
    let file = ModelFile::new(imported.network.clone(), None);
    let text = file.to_json();
    let mut outputs = crate::output::Outputs::new();
    outputs.stage(&args.output, |w| w.write_all(text.as_bytes()))?;
    outputs.commit()?;
    let net = &imported.network;
    let gemms = net.ops().iter().filter(|o| o.gemm().is_some()).count();
    let per_channel =
        net.ops().iter().filter_map(|o| o.gemm()).filter(|l| l.weight_scales().len() > 1).count();
    let input = &imported.input;
    let layout = match input.layout {
        onnx::Layout::Image { c, h, w } => {
            format!("(N, {c}, {h}, {w}) NCHW in the ONNX model; (N, {h}, {w}, {c}) NHWC in the model file")
        }
        onnx::Layout::Flat { k, .. } => format!("(N, {k})"),
    };
    Ok(format!(
        "wrote {}: {net}\n{gemms} GEMM layers ({per_channel} with per-channel scales), opset {}; input '{}' {layout}, scale {:e}, zero point {}\n",
        args.output.display(),
        imported.opset,
        input.name,
        net.input_scale(),
        net.input_zero_point(),
    ))
}
