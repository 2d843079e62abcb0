#!/usr/bin/env bash
# Formal check that the structural dedupe (hdl::dedupe) changes nothing: Yosys proves rust-hdl's
# per-instance Verilog of the core and the deduped text that `emit` writes equivalent
# (equiv_make + equiv_simple + equiv_induct, after flattening; instance paths are unchanged by
# the dedupe, so every register pairs up by name).
# Usage: scripts/dedupe_equiv.sh DIM [SCRATCH_ROWS ACC_ROWS]   (default 16 8)
set -euo pipefail
dim=${1:?usage: dedupe_equiv.sh DIM [SCRATCH_ROWS ACC_ROWS]}
rows=${2:-16}
acc=${3:-8}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$(dirname "$0")/.."
cargo run -q -p protobrain-hdl --example verilog_sizes -- --rows "$rows" "$acc" --write "$dir" "$dim"
prep="hierarchy -top protobrain_core; proc; flatten; memory -nomap; memory_map; opt_clean"
yosys -q -l "$dir/equiv.log" -p "
read_verilog $dir/core_d${dim}_raw.v; $prep; rename protobrain_core gold; design -stash gold
read_verilog $dir/core_d${dim}.v; $prep; rename protobrain_core gate; design -stash gate
design -copy-from gold -as gold gold; design -copy-from gate -as gate gate
equiv_make gold gate equiv; hierarchy -top equiv
equiv_simple -seq 2; equiv_induct; equiv_status -assert"
tail -n 20 "$dir/equiv.log" | grep -E 'proven|Equivalence'
