"""Minimal reader for R's serialization format (XDR, versions 2 and 3).

Enough of the format to read the data sets that R packages ship: .rds files and the
lazy-load databases (data/Rdata.rdx + data/Rdata.rdb) that hold a package's `data()`.
Character, logical, integer, double and raw vectors, lists, pairlists, attributes and
symbols are decoded; anything else (closures, environments, byte code) raises RDataError.

R values map to Python as:
  character vector -> RVector(kind="character", values=[str | None, ...])
  other atomic vectors -> RVector(kind=..., values=[...])
  list (VECSXP) -> RVector(kind="list", values=[...])
  pairlist -> list of (tag, value) pairs
  symbol -> RSymbol(name)
  NULL -> None
Attributes (names, class, row.names, ...) are kept in RVector.attributes.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass, field


class RDataError(Exception):
    pass


@dataclass
class RSymbol:
    name: str


@dataclass
class RVector:
    kind: str
    values: list
    attributes: list = field(default_factory=list)

    def attr(self, name):
        for tag, value in self.attributes:
            if tag == name:
                return value
        return None

    def names(self):
        n = self.attr("names")
        return n.values if isinstance(n, RVector) else None


# SEXP type codes used by the serializer.
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP = 9, 10, 13, 14, 15, 16
DOTSXP, VECSXP, EXPRSXP, RAWSXP, S4SXP = 17, 19, 20, 24, 25
# Pseudo types that only occur in serialized streams.
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP = 255, 254, 253, 252
MISSINGARG_SXP, BASENAMESPACE_SXP, NAMESPACESXP, PACKAGESXP = 251, 250, 249, 248
PERSISTSXP, EMPTYENV_SXP, BASEENV_SXP = 247, 242, 241
ATTRLANGSXP, ATTRLISTSXP, ALTREP_SXP = 240, 239, 238

NA_INTEGER = -(2**31)
LATIN1_MASK = 1 << 2
BYTES_MASK = 1 << 1


def decompress_file_bytes(data: bytes) -> bytes:
    """Undo the whole-file compression R uses for .rds / .rda files."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.refs: list = []

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise RDataError(
                f"expected {n} more bytes at offset {self.pos}, found {len(self.data) - self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two more words
            hi, lo = self.int(), self.int()
            n = (hi << 32) + (lo & 0xFFFFFFFF)
        if n < 0:
            raise RDataError(f"expected a vector length, found {n}")
        return n

    def header(self):
        fmt = self.take(2)
        if fmt != b"X\n":
            raise RDataError(f"expected XDR serialization ('X\\n'), found {fmt!r}")
        version = self.int()
        self.int()  # writer's R version
        self.int()  # oldest R version that can read it
        if version == 3:
            n = self.int()
            self.take(n)  # native encoding name
        elif version != 2:
            raise RDataError(f"expected serialization version 2 or 3, found {version}")

    def charsxp(self, levels: int):
        n = self.int()
        if n == -1:
            return None  # NA_character_
        raw = self.take(n)
        if levels & LATIN1_MASK:
            return raw.decode("latin-1")
        if levels & BYTES_MASK:
            return raw.decode("utf-8", errors="replace")
        return raw.decode("utf-8")

    def item(self):
        flags = self.int()
        sxptype = flags & 0xFF
        levels = flags >> 12
        has_attr = bool(flags & (1 << 9))

        if sxptype == NILVALUE_SXP:
            return None
        if sxptype in (EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP,
                       MISSINGARG_SXP, BASENAMESPACE_SXP):
            return RSymbol(f"<special {sxptype}>")
        if sxptype == REFSXP:
            index = flags >> 8
            if index == 0:
                index = self.int()
            if not 1 <= index <= len(self.refs):
                raise RDataError(f"expected a reference in 1..{len(self.refs)}, found {index}")
            return self.refs[index - 1]
        if sxptype in (PERSISTSXP, NAMESPACESXP, PACKAGESXP):
            if self.int() != 0:
                raise RDataError("expected 0 before a persistent name vector")
            names = [self.item() for _ in range(self.int())]
            value = RSymbol(f"<{sxptype} {names}>")
            self.refs.append(value)
            return value
        if sxptype == SYMSXP:
            name = self.item()
            sym = RSymbol(name if isinstance(name, str) else str(name))
            self.refs.append(sym)
            return sym
        if sxptype == CHARSXP:
            return self.charsxp(levels)
        if sxptype in (LISTSXP, LANGSXP, DOTSXP, ATTRLISTSXP, ATTRLANGSXP):
            return self.pairlist(flags)
        if sxptype in (LGLSXP, INTSXP):
            n = self.length()
            vals = list(struct.unpack(f">{n}i", self.take(4 * n)))
            vals = [None if v == NA_INTEGER else v for v in vals]
            vec = RVector("logical" if sxptype == LGLSXP else "integer", vals)
        elif sxptype == REALSXP:
            n = self.length()
            vec = RVector("double", list(struct.unpack(f">{n}d", self.take(8 * n))))
        elif sxptype == CPLXSXP:
            n = self.length()
            v = struct.unpack(f">{2 * n}d", self.take(16 * n))
            vec = RVector("complex", [complex(v[2 * i], v[2 * i + 1]) for i in range(n)])
        elif sxptype == STRSXP:
            n = self.length()
            vals = []
            for _ in range(n):
                f = self.int()
                if f & 0xFF != CHARSXP:
                    raise RDataError(f"expected CHARSXP in a character vector, found type {f & 0xFF}")
                vals.append(self.charsxp(f >> 12))
            vec = RVector("character", vals)
        elif sxptype in (VECSXP, EXPRSXP):
            n = self.length()
            vec = RVector("list", [self.item() for _ in range(n)])
        elif sxptype == RAWSXP:
            n = self.length()
            vec = RVector("raw", list(self.take(n)))
        elif sxptype == ALTREP_SXP:
            return self.altrep()
        else:
            raise RDataError(f"expected a data object, found R type {sxptype} (not supported)")
        if has_attr:
            vec.attributes = self.item() or []
        return vec

    def pairlist(self, flags: int):
        out = []
        while True:
            sxptype = flags & 0xFF
            if sxptype not in (LISTSXP, LANGSXP, DOTSXP, ATTRLISTSXP, ATTRLANGSXP):
                raise RDataError(f"expected a pairlist cell, found R type {sxptype}")
            if flags & (1 << 9):
                self.item()  # attributes of the cell itself: not needed
            tag = self.item() if flags & (1 << 10) else None
            value = self.item()
            out.append((tag.name if isinstance(tag, RSymbol) else tag, value))
            flags = self.int()
            if flags & 0xFF == NILVALUE_SXP:
                return out
            if flags & 0xFF == REFSXP or flags & 0xFF not in (LISTSXP, ATTRLISTSXP):
                raise RDataError(f"expected a pairlist continuation, found R type {flags & 0xFF}")

    def altrep(self):
        info = self.item()
        state = self.item()
        attributes = self.item()
        cls = info[0][1].name if isinstance(info, list) and info else "?"
        if cls in ("compact_intseq", "compact_realseq") and isinstance(state, RVector):
            n, start, step = state.values[:3]
            kind = "integer" if cls == "compact_intseq" else "double"
            vals = [start + i * step for i in range(int(n))]
            if kind == "integer":
                vals = [int(v) for v in vals]
            vec = RVector(kind, vals)
        elif cls.startswith("wrap_") and isinstance(state, RVector) and state.kind == "list":
            vec = state.values[0]
        elif cls == "deferred_string" and isinstance(state, list) and state:
            arg = state[0][1]
            vec = RVector("character", [None if v is None else repr(v) for v in arg.values])
        else:
            raise RDataError(f"expected a known ALTREP class, found {cls}")
        if attributes:
            vec.attributes = attributes
        return vec


def unserialize(data: bytes):
    """Decode one serialized R object (already decompressed)."""
    r = _Reader(data)
    r.header()
    return r.item()


def read_rds(path: str):
    with open(path, "rb") as f:
        return unserialize(decompress_file_bytes(f.read()))


def _lazyload_blob(blob: bytes, compressed: int) -> bytes:
    """Decompress one entry of a lazy-load .rdb file (R's compression types 1..3)."""
    if len(blob) < 4:
        raise RDataError(f"expected at least 4 bytes in a lazy-load entry, found {len(blob)}")
    out_len = struct.unpack(">I", blob[:4])[0]
    body = blob[4:]
    if compressed == 1:
        out = zlib.decompress(body)
    else:
        kind, body = body[:1], body[1:]
        if kind == b"Z":
            out = zlib.decompress(body)
        elif kind == b"2":
            out = bz2.decompress(body)
        elif kind == b"X":
            out = lzma.decompress(body)
        elif kind == b"0":
            out = body
        else:
            raise RDataError(f"expected compression tag Z, 2, X or 0, found {kind!r}")
    if len(out) != out_len:
        raise RDataError(f"expected {out_len} decompressed bytes, found {len(out)}")
    return out


def read_lazyload_db(stem: str) -> dict:
    """Read every variable of the lazy-load database STEM.rdx / STEM.rdb."""
    index = read_rds(stem + ".rdx")
    if not isinstance(index, RVector) or index.kind != "list":
        raise RDataError("expected a list in the lazy-load index")
    parts = dict(zip(index.names() or [], index.values))
    variables = parts.get("variables")
    if not isinstance(variables, RVector):
        raise RDataError("expected 'variables' in the lazy-load index")
    comp = parts.get("compressed")
    compressed = 1
    if isinstance(comp, RVector) and comp.values:
        compressed = int(comp.values[0])
    with open(stem + ".rdb", "rb") as f:
        db = f.read()
    out = {}
    for name, where in zip(variables.names() or [], variables.values):
        start, size = where.values[:2]
        blob = db[start:start + size]
        if len(blob) != size:
            raise RDataError(f"expected {size} bytes for {name} at {start}, found {len(blob)}")
        out[name] = unserialize(_lazyload_blob(blob, compressed))
    return out
