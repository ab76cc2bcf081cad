#!/usr/bin/env python3
"""Writes small seed inputs for gguf_fuzz and safetensors_fuzz.

Usage: fuzz/make_format_corpus.py [OUT_DIR]   (default build-fuzz/corpus; creates OUT_DIR/<target>/)
Then, for example:
  build-fuzz/fuzz/gguf_fuzz -max_total_time=120 build-fuzz/corpus/gguf_fuzz
Standard library only; the images follow the GGUF v2/v3, safetensors and .npy layouts.
"""
import json
import os
import struct
import sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
          U64: "<Q", I64: "<q", F64: "<d"}


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_payload(vtype, value):
    if vtype == STRING:
        return gguf_string(value)
    if vtype == ARRAY:
        etype, items = value
        out = struct.pack("<IQ", etype, len(items))
        return out + b"".join(gguf_payload(etype, item) for item in items)
    return struct.pack(SCALAR[vtype], value)


def gguf(version, metadata, tensors, alignment=32):
    """metadata: [(key, type, value)]; tensors: [(name, dims, ggml_type, data bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, vtype, value in metadata:
        out += gguf_string(key) + struct.pack("<I", vtype) + gguf_payload(vtype, value)
    offset = 0
    blobs = []
    for name, dims, ggml_type, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
        blobs.append((offset, data))
        offset += len(data)
        offset += -offset % alignment
    out += b"\0" * (-len(out) % alignment)
    start = len(out)
    for off, data in blobs:
        out += b"\0" * (start + off - len(out)) + data
    return out


def pattern(n, seed):
    return bytes((seed * 31 + i * 17) % 251 + 1 for i in range(n))


def safetensors(entries, metadata=None):
    """entries: [(name, dtype, shape, data bytes)]."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, blob in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def npy(descr, shape, data, major=1):
    text = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d, " % d for d in shape).rstrip(" ") if len(shape) != 1 else "%d," % shape[0])
    prefix = 10 if major == 1 else 12
    text += " " * (-(prefix + len(text) + 1) % 64) + "\n"
    size = struct.pack("<H", len(text)) if major == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([major, 0]) + size + text.encode() + data


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build-fuzz", "corpus")
    seeds = {
        "gguf_fuzz": {
            "empty_v3.gguf": gguf(3, [], []),
            "metadata_v2.gguf": gguf(2, [("general.architecture", STRING, "llama"),
                                         ("llama.block_count", U32, 2)], []),
            "every_type.gguf": gguf(3, [
                ("u8", U8, 7), ("i8", I8, -7), ("u16", U16, 700), ("i16", I16, -700),
                ("u32", U32, 70000), ("i32", I32, -70000), ("f32", F32, 0.5), ("bool", BOOL, True),
                ("str", STRING, "h\u00e9"), ("u64", U64, 1 << 40), ("i64", I64, -(1 << 40)), ("f64", F64, 2.5),
                ("tokens", ARRAY, (STRING, ["<s>", "a", "b"])),
                ("nested", ARRAY, (ARRAY, [(I32, [1, 2]), (I32, [])])),
            ], []),
            "tensors.gguf": gguf(3, [("general.alignment", U32, 64)], [
                ("a", [4, 2], 0, pattern(32, 1)),
                ("q", [32], 8, pattern(34, 2)),
                ("h", [3], 1, pattern(6, 3)),
            ], alignment=64),
        },
        "safetensors_fuzz": {
            "empty.safetensors": safetensors([]),
            "three.safetensors": safetensors([
                ("a", "F32", [2, 2], pattern(16, 4)),
                ("b", "F16", [3], pattern(6, 5)),
                ("c", "BF16", [1, 1], pattern(2, 6)),
            ], {"format": "pt"}),
            "unsupported.safetensors": safetensors([("i", "I8", [4], pattern(4, 7))]),
            "scalar.safetensors": safetensors([("s", "F32", [], pattern(4, 8)), ("e", "F16", [0], b"")]),
        },
        "npy_fuzz": {
            "f4.npy": npy("<f4", [2, 3], pattern(24, 9)),
            "i4.npy": npy("<i4", [4], pattern(16, 10)),
            "f8_v2.npy": npy("<f8", [], pattern(8, 11), major=2),
            "i8.npy": npy("<i8", [1, 2], struct.pack("<qq", -5, 7)),
        },
    }
    for target, files in seeds.items():
        folder = os.path.join(out_dir, target)
        os.makedirs(folder, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        print(f"{folder}: {len(files)} seeds")


if __name__ == "__main__":
    main()
