#!/usr/bin/env python3
"""Write the example SCALE-Sim topology files in data/topologies/ from the published shapes.

    python3 scripts/topologies.py            # rewrites data/topologies/*.csv

SCALE-Sim's conv layout takes the IFMAP already padded and computes OH = ceil((H - FH + S)/S).
The padded sizes below are chosen so that this formula gives the network's real output size
(for a stride-2 layer the padded IFMAP is one row/column smaller than 'input + 2 * pad' when
that would otherwise round up).
"""
import os

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def row(name, h, f, c, n, s):
    return f"{name}, {h}, {h}, {f}, {f}, {c}, {n}, {s},\n"


def alexnet():
    # Krizhevsky et al. 2012, the five conv layers, ungrouped (one tower); 227x227 input
    return [
        row("Conv1", 227, 11, 3, 96, 4),  # -> 55x55
        row("Conv2", 31, 5, 96, 256, 1),  # 27x27 padded by 2 -> 27x27
        row("Conv3", 15, 3, 256, 384, 1),  # 13x13 padded by 1 -> 13x13
        row("Conv4", 15, 3, 384, 384, 1),
        row("Conv5", 15, 3, 384, 256, 1),
    ]


def resnet50():
    # He et al. 2016, ResNet-50 (stride on the 3x3 conv, as torchvision's v1.5), batch 1
    rows = [row("conv1", 229, 7, 3, 64, 2)]  # 224 padded by 3 -> 112x112, then maxpool -> 56
    size, cin = 56, 64
    # (stage, blocks, width, padded IFMAP of the strided 3x3, of the strided projection)
    for stage, blocks, width, stride in [(2, 3, 64, 1), (3, 4, 128, 2), (4, 6, 256, 2), (5, 3, 512, 2)]:
        out = width * 4
        for b in range(blocks):
            s = stride if b == 0 else 1
            osize = size // s
            p = f"res{stage}{chr(ord('a') + b)}"
            rows.append(row(f"{p}_branch2a", size, 1, cin, width, 1))
            # 3x3, padding 1: stride 1 on size+2; stride 2 on size+1 (-> size/2)
            rows.append(row(f"{p}_branch2b", size + 2 if s == 1 else size + 1, 3, width, width, s))
            rows.append(row(f"{p}_branch2c", osize, 1, width, out, 1))
            if b == 0:
                # 1x1 projection: stride 2 on size-1 (-> size/2)
                rows.append(row(f"{p}_branch1", size if s == 1 else size - 1, 1, cin, out, s))
            size, cin = osize, out
    rows.append(row("fc1000", 1, 1, 2048, 1000, 1))
    return rows


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "topologies")
    os.makedirs(here, exist_ok=True)
    for name, rows in [("alexnet-conv.csv", alexnet()), ("resnet50.csv", resnet50())]:
        with open(os.path.join(here, name), "w") as f:
            f.write(HEADER + "".join(rows))


if __name__ == "__main__":
    main()
