"""Reader for the windowed, LZW-compressed text file of Debian's bible-kjv-text package.

Layout (all integers 4-byte big-endian):
  0..1   magic "EC", 2..3 version "02", 4..83 description (NUL-padded)
  84     window size W (bytes of uncompressed text per window)
  88     number of windows N
  92     N+1 file offsets: start of each compressed window, then the end of the last
Each window is an independent stream of Unix `compress` codes (LZW, 9 to 16 bits per code,
block mode with CLEAR = 256, codes read in groups of n_bits bytes), decompressing to W bytes
(the last window may be shorter). A 3-byte `compress` header (1F 9D, flags) may precede the
first window; its flags give the maximum code width.
"""

from __future__ import annotations

import struct


class KjvDataError(Exception):
    pass


INIT_BITS = 9
CLEAR = 256
FIRST = 257


def lzw_decompress(data: bytes, max_bits: int = 16, block_mode: bool = True) -> bytes:
    """Decode one stream of Unix `compress` codes (no header)."""
    if not INIT_BITS <= max_bits <= 16:
        raise KjvDataError(f"expected 9..16 bits per code, found {max_bits}")
    max_max_code = 1 << max_bits
    prefix = [0] * max_max_code
    suffix = bytearray(max_max_code)
    suffix[:256] = bytes(range(256))
    out = bytearray()

    n_bits = INIT_BITS
    max_code = (1 << n_bits) - 1
    free_ent = FIRST if block_mode else 256
    clear_flag = False
    pos = 0
    codes: list = []  # codes left in the current group
    old_code = None
    fin_char = 0
    while True:
        # Reading a new group happens when the group is used up, when the code width grows,
        # and after a CLEAR; the unread rest of the old group is skipped in the last two cases.
        if clear_flag or not codes or free_ent > max_code:
            if free_ent > max_code:
                n_bits += 1
                max_code = max_max_code if n_bits == max_bits else (1 << n_bits) - 1
            if clear_flag:
                n_bits = INIT_BITS
                max_code = (1 << n_bits) - 1
                clear_flag = False
            group = data[pos:pos + n_bits]
            pos += len(group)
            if not group:
                break
            bits = int.from_bytes(group, "little")
            mask = (1 << n_bits) - 1
            count = (len(group) * 8) // n_bits
            codes = [(bits >> (i * n_bits)) & mask for i in range(count - 1, -1, -1)]
            if not codes:
                break
        code = codes.pop()
        if old_code is None:
            if code >= 256:
                raise KjvDataError(f"expected a literal first code, found {code}")
            old_code = fin_char = code
            out.append(code)
            continue
        if code == CLEAR and block_mode:
            clear_flag = True
            free_ent = FIRST - 1
            codes = []
            continue
        in_code = code
        stack = bytearray()
        if code >= free_ent:
            if code > free_ent:
                raise KjvDataError(f"expected a code <= {free_ent}, found {code} at byte {pos}")
            stack.append(fin_char)
            code = old_code
        while code >= 256:
            stack.append(suffix[code])
            code = prefix[code]
        fin_char = suffix[code]
        stack.append(fin_char)
        stack.reverse()
        out += stack
        if free_ent < max_max_code:
            prefix[free_ent] = old_code
            suffix[free_ent] = fin_char
            free_ent += 1
        old_code = in_code
    return bytes(out)


def read_kjv_text(path: str) -> bytes:
    """Return the whole uncompressed text of a bible.data file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 92 or data[:2] != b"EC" or data[2:4] != b"02":
        raise KjvDataError(f"expected an 'EC02' text data file, found {data[:4]!r}")
    wsize, wnum = struct.unpack(">II", data[84:92])
    if not 0 < wnum < 100000 or not 0 < wsize <= 1 << 24:
        raise KjvDataError(f"expected a sane window table, found size {wsize} count {wnum}")
    table_end = 92 + 4 * (wnum + 1)
    starts = struct.unpack(f">{wnum + 1}I", data[92:table_end])
    max_bits = 16
    if data[table_end:table_end + 2] == b"\x1f\x9d":
        max_bits = data[table_end + 2] & 0x1F
    out = bytearray()
    for w in range(wnum):
        a, b = starts[w], starts[w + 1]
        if not table_end <= a <= b <= len(data):
            raise KjvDataError(f"expected window {w} inside the file, found {a}..{b}")
        chunk = lzw_decompress(data[a:b], max_bits=max_bits)
        if w + 1 < wnum and len(chunk) != wsize:
            raise KjvDataError(f"expected {wsize} bytes from window {w}, found {len(chunk)}")
        out += chunk
    return bytes(out)
