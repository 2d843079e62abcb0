#!/usr/bin/env bash
# Formal check that what `emit` writes is rust-hdl's design: Yosys proves the per-instance Verilog
# of the core (rust-hdl's text, one module per instance, arrays included) and the emitted text
# (the systolic array, the output columns, the row buffer and the delay lines as generate loops,
# rust-hdl's flip-flops inlined as registers, the rest structurally deduped) equivalent:
# equiv_make + equiv_simple + equiv_induct, after flattening. Registers pair up by hierarchical
# name. The dedupe keeps instance names; an inlined flip-flop X's register and input are `X$q`
# and `X$d` of its parent, where rust-hdl's netlist has the instance's own `X.q` and `X.d` (and
# `X$q`, `X$d` as aliases, which equiv_make does not wire through: without the rename
# equiv_simple cannot prove such a register on a one-register example, and at DIM 2 it was still
# failing cells after 20 minutes); the
# generate loops name PE(k, n) `array.pe[k*DIM+n].mac`, column n `cols.col[n].unit`, byte i of
# the row buffer `rowbuf.bytes[i].q`, stage s of a delay line `X.stage[s].q` (in the array
# `array.act_skew[i].line.stage[s].q`), where rust-hdl has `array.pe$N`, `cols.col$n`,
# `rowbuf.bytes$i.q`, `X.stage$s.q` and `array.act_skew$i.stage$s.q`; the banked memories'
# banks are `M.bank[0]` and `M.bank[1]` and their port selects `M.sel_a`, `M.sel_b`, where
# rust-hdl has `M.lo`, `M.hi`, `M.sel_a.q`, `M.sel_b.q`: the emitted netlist's wires are renamed
# to rust-hdl's names first (`P$q` to `P.q` and `P$d` to `P.d` where rust-hdl's netlist has the
# new name and the emitted one does not).
# Usage: scripts/emit_equiv.sh DIM [SCRATCH_ROWS ACC_ROWS]   (default 16 8)
set -euo pipefail
dim=${1:?usage: emit_equiv.sh DIM [SCRATCH_ROWS ACC_ROWS]}
rows=${2:-16}
acc=${3:-8}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$(dirname "$0")/.."
cargo run -q --release -p protobrain-hdl --example verilog_sizes -- --rows "$rows" "$acc" --raw --write "$dir" "$dim" >/dev/null
prep="hierarchy -top protobrain_core; proc; flatten; memory -nomap; memory_map; opt_clean"
# the wires of both netlists (public names only: Yosys' own `$...` wires have no counterpart to
# pair with)
yosys -q -p "read_verilog $dir/core_d${dim}.v; $prep; tee -q -o $dir/wires.txt select -list w:*"
yosys -q -p "read_verilog $dir/core_d${dim}_raw.v; $prep; tee -q -o $dir/gold_wires.txt select -list w:*"
sed -n 's|^protobrain_core/||p' "$dir/wires.txt" | grep -v '^\$' >"$dir/gate_names.txt"
sed -n 's|^protobrain_core/||p' "$dir/gold_wires.txt" | grep -v '^\$' >"$dir/gold_names.txt"
# each emitted wire's rust-hdl name: the generate loops' names first, one line per wire ...
sed -E -e 's/^array\.pe\[([0-9]+)\]\.mac\./array.pe$\1./' \
    -e 's/^array\.(act_skew|sel_skew|deskew)\[([0-9]+)\]\.line\./array.\1$\2./' \
    -e 's/^cols\.col\[([0-9]+)\]\.unit\./cols.col$\1./' \
    -e 's/^rowbuf\.bytes\[([0-9]+)\]\./rowbuf.bytes$\1./' \
    -e 's/\.stage\[([0-9]+)\]\./.stage$\1./' \
    -e 's/^(scratch|accmem)\.bank\[0\]\./\1.lo./' -e 's/^(scratch|accmem)\.bank\[1\]\./\1.hi./' \
    "$dir/gate_names.txt" >"$dir/gate_renamed.txt"
# ... then an inlined flip-flop's register and input, `P$q` and `P$d`, become `P.q` and `P.d`
# (the flip-flop instance's own wires in rust-hdl's text), where rust-hdl's netlist has that
# name and the emitted one does not
paste -d ' ' "$dir/gate_names.txt" "$dir/gate_renamed.txt" | awk '
    NR == FNR { gold[$0] = 1; next }
    { w[++n] = $1; r[n] = $2; gate[$2] = 1 }
    END {
        for (i = 1; i <= n; i++) {
            x = r[i]
            if (x ~ /\$[qd]$/) {
                p = substr(x, 1, length(x) - 2) "." substr(x, length(x))
                if ((p in gold) && !(p in gate)) { x = p; dff++ }
            }
            if (x != w[i]) print "rename " w[i] " " x
        }
        print dff + 0 > "/dev/stderr"
    }' "$dir/gold_names.txt" - >"$dir/rename.ys" 2>"$dir/dff_count.txt"
# the memories' port selects: one register each in the generate loop, a flip-flop's in rust-hdl's
for m in scratch accmem; do
    for s in sel_a sel_b; do
        if grep -qx "$m\.$s" "$dir/gate_names.txt"; then printf 'rename %s.%s %s.%s.q\n' "$m" "$s" "$m" "$s"; fi
    done
done >>"$dir/rename.ys"
echo "renaming $(wc -l <"$dir/rename.ys") wires ($(cat "$dir/dff_count.txt") of them inlined flip-flops' registers and inputs)"
yosys -q -l "$dir/equiv.log" -p "
read_verilog $dir/core_d${dim}_raw.v; $prep; rename protobrain_core gold; design -stash gold
read_verilog $dir/core_d${dim}.v; $prep; cd protobrain_core; script $dir/rename.ys; cd ..
rename protobrain_core gate; design -stash gate
design -copy-from gold -as gold gold; design -copy-from gate -as gate gate
equiv_make gold gate equiv; hierarchy -top equiv
equiv_simple -seq 2; equiv_induct; equiv_status -assert"
tail -n 20 "$dir/equiv.log" | grep -E 'proven|Equivalence'
