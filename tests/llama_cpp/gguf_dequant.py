#!/usr/bin/python3
"""Dequantizes every tensor of a GGUF file with llama.cpp's own Python package (gguf-py).

Usage: PYTHONPATH=<llama.cpp>/gguf-py /usr/bin/python3 gguf_dequant.py FILE.gguf OUT_DIR

Reads FILE.gguf with gguf.GGUFReader and writes each tensor's values, dequantized by
gguf.quants.dequantize, to OUT_DIR/<tensor name>.f32 as raw little-endian float32 in
llama.cpp's element order (row-major in the torch shape). Prints a JSON list of
{"name", "type" (e.g. "Q4_K"), "type_id", "shape" (torch order: ne[] reversed), "file"}.
tests/testing/llama_gguf_py.h runs it.
"""

import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    reader = GGUFReader(path, "r")
    listing = []
    for tensor in reader.tensors:
        name = tensor.name
        if not name or "/" in name or name.startswith("."):
            print(f"gguf_dequant: tensor name {name!r} is not a file name", file=sys.stderr)
            return 1
        values = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        if values.size != int(tensor.n_elements):
            print(f"gguf_dequant: {name}: {values.size} values, expected {tensor.n_elements}",
                  file=sys.stderr)
            return 1
        out_path = os.path.join(out_dir, name + ".f32")
        values.astype("<f4", copy=False).tofile(out_path)
        listing.append({
            "name": name,
            "type": tensor.tensor_type.name,
            "type_id": int(tensor.tensor_type),
            "shape": [int(d) for d in reversed(tensor.shape.tolist())],
            "file": out_path,
        })
    json.dump(listing, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
