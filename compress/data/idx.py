"""Reader for the IDX format of (Fashion-)MNIST: big-endian header, then a dense uint8 array."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from compress.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (gzipped) IDX file: magic ``00 00 TYPE NDIM``, NDIM big-endian uint32 sizes, then the data."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise DataError(f"cannot read IDX file {p}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{p} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape))
    if len(raw) - offset != count * dtype.itemsize:
        raise DataError(f"{p}: header says {shape} but the file holds {len(raw) - offset} data bytes")
    return np.frombuffer(raw, dtype, count=count, offset=offset).reshape(shape)
