//! Command-line syntax (clap derive). Semantic checks (flag combinations, value ranges) live in
//! the command modules so that each failure is reported as one line, like a bad file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// protobrain: an open systolic-array int8 matmul + ReLU accelerator.
#[derive(Debug, Parser)]
#[command(
    name = "protobrain",
    version,
    about = "protobrain: an open systolic-array int8 matmul + ReLU accelerator",
    long_about = "protobrain: an open systolic-array int8 matmul + ReLU accelerator.\n\n\
        Computes layers Y = act(X W + b) with the bit-exact arithmetic of the design contract \
        (int8 inputs, int32 accumulation, multiply-shift requantisation, optional ReLU, int8 \
        saturation). Every command runs on --backend golden (the functional golden device), \
        native (the cycle-exact native model), rtl (the emitted Verilog under Verilator) or \
        serial (a board).",
    after_help = "Examples:\n  \
        protobrain demo\n  \
        protobrain emit --preset ecp5-25k -o core.v\n  \
        protobrain matmul -i X.npy -w W.npy --backend rtl --report r.json -o Y.npy\n  \
        protobrain matmul -i X.npy -w W.npy -b B.npy --scale 0.01 --relu -o Y.npy\n  \
        protobrain matmul -i X.npy -w W.npy --raw -o ACC.npy"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute one layer Y = act(X W + b) from .npy files.
    #[command(
        long_about = "Compute one layer Y = act(X W + b) from .npy files.\n\n\
            X is int8 of shape (M, K), W int8 (K, N), b int32 (N,). The output is int8 (M, N): \
            acc = X W in int32 (wrapping), then (acc + b) * MULT, rounded half up and \
            shifted right by SHIFT, ReLU if asked, saturated to [-128, 127]. With --raw the \
            output is int32 acc + b instead. Without --multiplier/--shift/--scale the \
            requantisation is the identity (multiplier 1, shift 0). The output is written only if \
            everything succeeds.",
        after_help = "Examples:\n  \
            protobrain matmul -i X.npy -w W.npy -o Y.npy\n  \
            protobrain matmul -i X.npy -w W.npy -b B.npy --multiplier 300 --shift 16 --relu -o Y.npy\n  \
            protobrain matmul -i X.npy -w W.npy -b B.npy --scale 0.0045 -o Y.npy\n  \
            protobrain matmul -i X.npy -w W.npy -b B.npy --raw -o ACC.npy"
    )]
    Matmul(MatmulArgs),
    /// Train a digits MLP, quantise it, and run it on every model of the hardware.
    #[command(
        long_about = "Software 2.0 end to end: train a 64-HIDDEN-10 MLP on the bundled \
        8x8 handwritten digits (in Rust, seeded), quantise it to int8, compile it for the device \
        and run the 500 test images on the golden device, the native cycle model and the RTL \
        (Verilator). Every backend must give the host golden model's logits bit for bit and the \
        two cycle models the same cycle count; the report shows accuracy, cycles, latency, \
        throughput and utilisation, and model.json is written to --out.",
        after_help = "Examples:\n  \
            protobrain demo\n  \
            protobrain demo --hidden 64 --preset ecp5-25k --clock 100\n  \
            protobrain demo --no-rtl --dim 16"
    )]
    Demo(crate::demo::DemoArgs),
    /// Write the Verilog of protobrain_core for a configuration.
    #[command(
        long_about = "Write the Verilog of protobrain_core for a configuration: one self-contained \
            file with the ports clk, rst, in_data[32*LANES-1:0], in_valid, in_ready, \
            out_data[32*LANES-1:0], out_valid, out_ready (docs/design.md; LANES 1 unless \
            --lanes). Start from --preset and override any of --dim, --scratch-rows, --acc-rows.",
        after_help = "Examples:\n  \
            protobrain emit -o core.v\n  \
            protobrain emit --preset ecp5-25k -o core_ecp5.v\n  \
            protobrain emit --dim 16 --scratch-rows 4096 --acc-rows 1024 -o core16.v"
    )]
    Emit(crate::emit::EmitArgs),
    /// Run a quantised network (model.json or an int8 model.onnx) on inputs through the driver.
    #[command(
        visible_alias = "mlp",
        long_about = "Run a quantised network on inputs: a model file (docs/model-format.md) or an \
            int8 ONNX model quantised by onnxruntime (docs/onnx.md). conv2d and dense layers run on \
            the device as GEMMs compiled for it (--preset, --dim, ...), maxpool2d, global_avg_pool \
            and flatten on the host, all in the device's bit-exact integer arithmetic. For a model \
            file, X is (N, H, W, C) NHWC or (N, H*W*C), int8 or float (quantised with the model's \
            input scale and zero point as ONNX's QuantizeLinear does); Y is int32 logits when the \
            model's output is \"raw\" (take the argmax per row), else int8; --float writes it \
            dequantised as float32. For an ONNX model, X and Y are what onnxruntime takes and \
            returns: float32 in the graph's shapes (NCHW images). The outputs are written only if \
            everything succeeds. `mlp` is the same command.",
        after_help = "Examples:\n  \
            protobrain infer -m data/digits-cnn.json -i X.npy -o LOGITS.npy --backend rtl\n  \
            protobrain infer -m data/digits-mlp.json -i X.npy -o Y.npy --float --report r.json\n  \
            protobrain infer -m model.onnx -i X.npy -o Y.npy --backend native\n  \
            protobrain mlp -m model.json -i X.npy -o Y.npy --preset ice40-up5k"
    )]
    Infer(crate::infer::InferArgs),
    /// Convert an int8 ONNX model (quantised by onnxruntime) into a protobrain model file.
    #[command(
        long_about = "Convert an int8 ONNX model, quantised by onnxruntime (QDQ or QOperator form), \
            into a protobrain model file (docs/model-format.md) that compile, estimate, run and \
            infer take. Supported: QuantizeLinear/DequantizeLinear around Conv, Gemm, MatMul, Relu, \
            Clip, MaxPool, Flatten, Reshape; QLinearConv, QLinearMatMul; MatMulInteger and \
            ConvInteger with their requantisation; opset 13 and up; int8 weights with zero point 0 \
            (per-tensor or per-channel), int8 or uint8 activations with any zero point. Anything \
            else is refused with one line naming the node (exit 2, nothing written). See docs/onnx.md.",
        after_help = "Examples:\n  \
            protobrain import model.onnx -o model.json\n  \
            protobrain estimate --model model.json --preset tpu-v1"
    )]
    Import(crate::import::ImportArgs),
    /// Quantise a float MLP (.npz or .safetensors weights) to an int8 model file, calibrated on inputs.
    #[command(
        long_about = "Quantise a float MLP to an int8 model file (docs/model-format.md) with the \
            same code as the demo: symmetric per-tensor int8 weights, int32 biases at the \
            accumulator scale, each layer's output range calibrated on --calibration inputs \
            (its maximum, or --percentile), ReLU between layers, raw int32 logits out unless \
            --int8-output. The weights are tensors NAME.weight and NAME.bias (bias optional) in \
            a numpy .npz (np.savez) or a .safetensors file (a PyTorch state_dict), float32 or \
            float64; PyTorch's (out, in) layout unless --layout in-out. It reports how often the \
            int8 model picks the float model's class on the calibration inputs.",
        after_help = "Examples:\n  \
            protobrain quantize -w mlp.safetensors -c X_calib.npy -o model.json\n  \
            protobrain quantize -w mlp.npz --layout in-out --layers l0,l1,l2 -c X.npy --percentile 99.9 -o model.json\n\n\
            Make the files from PyTorch:\n  \
            safetensors.torch.save_file(model.state_dict(), \"mlp.safetensors\")\n  \
            np.savez(\"mlp.npz\", **{k: v.numpy() for k, v in model.state_dict().items()})"
    )]
    Quantize(crate::quantize::QuantizeArgs),
    /// Compile a layer or an MLP into a program: the exact command stream, as JSON and .bin.
    #[command(after_help = "Examples:\n  \
        protobrain compile layer -i X.npy -w W.npy -b B.npy --scale 0.01 --relu -o prog.json --bin prog.bin\n  \
        protobrain compile mlp -m model.json -i X.npy --preset ecp5-25k -o prog.json")]
    Compile(crate::program_cmd::CompileArgs),
    /// Execute a saved program (.json or .bin) and print every response and the cycle count.
    #[command(
        long_about = "Execute a saved program (.json or .bin) on --backend golden, native, rtl or \
            serial and print every response and, on native and rtl, the cycle count: cycles from \
            the first word in (cycle 0, right after reset) to the last response word out, the \
            definition every command uses. With --backend serial the words go to a board over \
            --port (its INFO must match the program's configuration), whole commands at a time, \
            and its answers are read as they fall due. A .json program carries its \
            configuration (config flags may only repeat it); a .bin runs on the configuration \
            of the flags. A stream that ends inside a command, or a command the device refuses, \
            is an error (exit 2, one line per kind of refusal).",
        after_help = "Examples:\n  \
        protobrain run -p prog.json --backend native\n  \
        protobrain run -p prog.bin --preset default --backend rtl --trace run.vcd\n  \
        protobrain run -p prog.json --backend serial --port /dev/ttyUSB1"
    )]
    Run(crate::program_cmd::RunArgs),
    /// Build a board's bitstream with the open FPGA flow and report resources and Fmax.
    #[command(after_help = "Examples:\n  \
        protobrain bitstream --board icebreaker\n  \
        protobrain bitstream --board ulx3s-25f -o build/ulx3s\n\n\
        ECP5 needs nextpnr-ecp5 and ecppack on PATH or in $PROTOBRAIN_TOOLS_DIR \
        (scripts/setup.sh --ecp5 installs YoWASP's). See docs/fpga.md.")]
    Bitstream(crate::bitstream::BitstreamArgs),
    /// Estimate cycles, utilisation, energy and power of a GEMM, an MLP or a SCALE-Sim topology.
    #[command(
        long_about = "Estimate how fast and how much energy and power a GEMM or an MLP takes on a \
            configuration, before building it: the workload is compiled by the driver and run on \
            the cycle-exact native model (whole program, the MATMULs alone, and the MATMULs with \
            their weight loads), with an optional host-link bandwidth; energy is activity counts \
            times a technology table (docs/estimates.md). --topology takes a SCALE-Sim topology \
            file (conv or GEMM layout) and estimates every layer as a GEMM, in parallel, with a \
            per-layer table, JSON, a CSV shaped like SCALE-Sim's COMPUTE_REPORT.csv, and a plot.",
        after_help = "Examples:\n  \
            protobrain estimate --gemm 1024,256,256\n  \
            protobrain estimate --gemm 8192,1024,1024 --preset tpu-v1 --tech 28nm --json tpu.json\n  \
            protobrain estimate --model data/digits-mlp.json --batch 500 --preset ice40-up5k --link-baud 1000000\n  \
            protobrain estimate --topology data/topologies/alexnet-conv.csv --dim 16 --csv r.csv --svg r.svg"
    )]
    Estimate(crate::estimate::EstimateArgs),
    /// Sweep DIM and M (plots), or a topology over DIMs, shardable across machines.
    #[command(after_help = "Examples:\n  \
        protobrain sweep\n  \
        protobrain sweep -o docs/img\n  \
        protobrain sweep --dims 4,8,16 --m 64,256,1024 --gemm 512,128,128 -o out/sweep\n  \
        protobrain sweep --topology data/topologies/resnet50.csv --dims 8,16,32,64 -o out/rn50\n  \
        protobrain sweep --topology data/topologies/resnet50.csv --dims 8,16,32,64 --shard 0/4 -o out/shards\n  \
        protobrain sweep merge out/shards -o out/rn50")]
    Sweep(crate::sweep::SweepArgs),
    /// Prove the stream contract on the core by bounded model checking (Yosys + SMT solver).
    #[command(after_help = "Examples:\n  \
        protobrain verify\n  \
        protobrain verify --depth 20 --property framing --property no-write\n  \
        protobrain verify --verilog core.v --dim 2 --scratch-rows 4 --acc-rows 4\n\n\
        Without config flags the core is DIM 2 with 4 scratchpad and 4 accumulator rows. \
        Prints one line per property; exits 0 only if all hold. See docs/verification.md.")]
    Verify(crate::verify::VerifyArgs),
}

/// A layer `Y = act(X W + b)` given as .npy files and requantisation flags.
#[derive(Debug, Args)]
pub struct LayerArgs {
    /// Activations X: int8 .npy of shape (M, K).
    #[arg(short, long, value_name = "X.npy")]
    pub input: PathBuf,

    /// Weights W: int8 .npy of shape (K, N).
    #[arg(short, long, value_name = "W.npy")]
    pub weights: PathBuf,

    /// Bias b: int32 .npy of shape (N,) [default: zeros].
    #[arg(short, long, value_name = "B.npy")]
    pub bias: Option<PathBuf>,

    /// Requantisation multiplier, 0..=65535 [default: 1].
    #[arg(long, value_name = "MULT")]
    pub multiplier: Option<u64>,

    /// Requantisation right shift, 0..=47, rounding half up [default: 0].
    #[arg(long, value_name = "SHIFT")]
    pub shift: Option<u64>,

    /// Real scale: picks the closest MULT / 2^SHIFT (instead of --multiplier/--shift).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub scale: Option<f64>,

    /// Apply ReLU before saturating to int8.
    #[arg(long)]
    pub relu: bool,

    /// Write int32 acc + b (no requantisation, no ReLU) instead of int8.
    #[arg(long)]
    pub raw: bool,
}

/// Arguments of `protobrain matmul`.
#[derive(Debug, Args)]
pub struct MatmulArgs {
    /// The layer: X, W, b and the requantisation.
    #[command(flatten)]
    pub layer: LayerArgs,

    /// Which device computes the result, and how to reach it.
    #[command(flatten)]
    pub link: crate::backend::LinkArgs,

    /// The device configuration the layer is tiled for.
    #[command(flatten)]
    pub config: crate::config_args::ConfigArgs,

    /// Write a JSON report (cycles, MACs, utilization, words moved, Config) here.
    #[arg(long, value_name = "r.json")]
    pub report: Option<PathBuf>,

    /// Where to write Y: int8 .npy (M, N), or int32 with --raw.
    #[arg(short, long, value_name = "Y.npy")]
    pub output: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["protobrain", "matmul", "-i", "x", "-w", "w", "-o", "y"]).unwrap();
        let Command::Matmul(a) = cli.command else { panic!("not matmul") };
        assert_eq!(a.link.backend, crate::backend::Backend::Golden);
        assert!(a.layer.bias.is_none() && a.layer.multiplier.is_none() && a.layer.shift.is_none());
        assert!(a.layer.scale.is_none() && !a.layer.relu && !a.layer.raw);
    }
}
