"""Wire format of v2 inference requests and responses: JSON, the binary tensor extension, compressed bodies.

Pure functions over bytes and numpy arrays, independent of the model: ``decompress`` (gzip/deflate with an
output bound), ``parse_infer_request`` (JSON header + binary tail -> typed inputs), ``encode_infer_response``
and the BYTES element encoding (4-byte little-endian length, then the bytes). Every malformed input raises
RequestError(400) with a message naming the field that was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from serve.errors import RequestError

HEADER_LENGTH = "Inference-Header-Content-Length"
NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}  # little-endian on the wire; BYTES is handled separately
_JSON_KINDS = {"BOOL": "b", "FP16": "biuf", "FP32": "biuf", "FP64": "biuf"}  # others: "biu"


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    shape: list[StrictInt]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class _Output(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[_Tensor] = Field(min_length=1)
    outputs: list[_Output] | None = None


@dataclass
class InputTensor:
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray | None = None  # numeric datatypes, already reshaped to ``shape``
    elements: list[bytes] | None = None  # BYTES, flat, row-major


@dataclass
class OutputRequest:
    name: str
    binary: bool
    classification: int  # 0 = raw tensor


@dataclass
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: list[InputTensor]
    outputs: list[OutputRequest] | None  # None = all outputs


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo Content-Encoding gzip/deflate (identity passes through), refusing output above ``max_bytes`` (413)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif enc == "deflate":
        wbits = zlib.MAX_WBITS  # zlib-wrapped, as tritonclient sends; raw deflate is tried below
    else:
        raise RequestError(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none", status=415)
    for bits in (wbits, -zlib.MAX_WBITS) if enc == "deflate" else (wbits,):
        d = zlib.decompressobj(bits)
        try:
            out = d.decompress(body, max_bytes + 1)
        except zlib.error:
            continue
        if len(out) > max_bytes or d.unconsumed_tail:
            raise RequestError(f"decompressed body is larger than the {max_bytes}-byte limit", status=413)
        if not d.eof:
            raise RequestError(f"truncated {enc} body")
        return out
    raise RequestError(f"body is not valid {enc} data")


def serialize_bytes(elements: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def deserialize_bytes(buf: bytes | memoryview, count: int, name: str) -> list[bytes]:
    out, pos, mv = [], 0, memoryview(buf)
    while pos < len(mv):
        if pos + 4 > len(mv):
            raise RequestError(f"input {name!r}: truncated BYTES element length at offset {pos}")
        (n,) = struct.unpack_from("<I", mv, pos)
        pos += 4
        if pos + n > len(mv):
            raise RequestError(f"input {name!r}: BYTES element of {n} bytes runs past the end of its data")
        out.append(bytes(mv[pos : pos + n]))
        pos += n
    if len(out) != count:
        raise RequestError(f"input {name!r}: shape holds {count} elements but the BYTES data has {len(out)}")
    return out


def _count(shape: list[int], name: str) -> int:
    if any(d < 0 for d in shape):
        raise RequestError(f"input {name!r}: shape {shape} has a negative dimension")
    return math.prod(shape)


def _from_json(t: _Tensor) -> InputTensor:
    count = _count(t.shape, t.name)
    if t.data is None:
        raise RequestError(f"input {t.name!r} has neither 'data' nor parameters.binary_data_size")
    if t.datatype == "BYTES":
        flat = _flatten(t.data, t.name)
        if len(flat) != count:
            raise RequestError(f"input {t.name!r}: shape {t.shape} holds {count} elements, data has {len(flat)}")
        return InputTensor(t.name, t.datatype, t.shape, elements=[_b64(v, t.name) for v in flat])
    try:
        arr = np.array(t.data)
    except (ValueError, TypeError):
        raise RequestError(f"input {t.name!r}: data is not a regular (non-ragged) array of numbers") from None
    if arr.dtype.kind not in _JSON_KINDS.get(t.datatype, "biu") or arr.size != count:
        if arr.size != count:
            raise RequestError(f"input {t.name!r}: shape {t.shape} holds {count} elements, data has {arr.size}")
        raise RequestError(f"input {t.name!r}: data elements are not valid {t.datatype} values")
    with np.errstate(over="ignore", invalid="ignore"):
        arr = arr.astype(NUMPY_DTYPES[t.datatype]).reshape(t.shape)
    return InputTensor(t.name, t.datatype, t.shape, array=arr)


def _flatten(data: Any, name: str, depth: int = 0) -> list[Any]:
    if depth > 8:
        raise RequestError(f"input {name!r}: data is nested too deeply")
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v, name, depth + 1))
    return out


def _b64(v: Any, name: str) -> bytes:
    if not isinstance(v, str):
        raise RequestError(f"input {name!r}: BYTES elements in JSON must be base64 strings")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            f"input {name!r}: BYTES element is not valid base64 "
            "(send images base64-encoded in JSON, or use binary data)"
        ) from None


def _from_binary(t: _Tensor, chunk: memoryview) -> InputTensor:
    count = _count(t.shape, t.name)
    if t.datatype == "BYTES":
        return InputTensor(t.name, t.datatype, t.shape, elements=deserialize_bytes(chunk, count, t.name))
    dtype = np.dtype(NUMPY_DTYPES[t.datatype]).newbyteorder("<")
    if len(chunk) != count * dtype.itemsize:
        raise RequestError(
            f"input {t.name!r}: shape {t.shape} of {t.datatype} needs {count * dtype.itemsize} bytes, "
            f"binary_data_size is {len(chunk)}"
        )
    arr = np.frombuffer(chunk, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(t.shape)
    return InputTensor(t.name, t.datatype, t.shape, array=arr)


def _header_length(value: str | None, total: int) -> int:
    if value is None:
        return total
    try:
        n = int(value)
    except ValueError:
        raise RequestError(f"{HEADER_LENGTH} must be an integer, got {value[:40]!r}") from None
    if not 0 < n <= total:
        raise RequestError(f"{HEADER_LENGTH} {n} is outside the body's 1..{total} bytes")
    return n


def _output_request(o: _Output) -> OutputRequest:
    p = o.parameters
    k = p.get("classification", 0)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise RequestError(f"output {o.name!r}: parameters.classification must be a positive integer, got {k!r}")
    binary = p.get("binary_data", False)
    if not isinstance(binary, bool):
        raise RequestError(f"output {o.name!r}: parameters.binary_data must be true or false")
    return OutputRequest(o.name, binary, k)


def parse_infer_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """Body (already decompressed) + Inference-Header-Content-Length -> InferRequest, or RequestError(400)."""
    n = _header_length(header_length, len(body))
    try:
        doc = json.loads(body[:n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(f"request header is not valid JSON: {err}") from None
    try:
        req = _Request.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise RequestError(f"invalid inference request at {where}: {first['msg']}") from None
    tail, pos = memoryview(body)[n:], 0
    inputs = []
    for t in req.inputs:
        if t.datatype != "BYTES" and t.datatype not in NUMPY_DTYPES:
            raise RequestError(f"input {t.name!r}: unknown datatype {t.datatype!r}")
        size = t.parameters.get("binary_data_size")
        if size is None:
            inputs.append(_from_json(t))
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0 or pos + size > len(tail):
            raise RequestError(
                f"input {t.name!r}: binary_data_size {size!r} does not fit the {len(tail) - pos} bytes left"
            )
        inputs.append(_from_binary(t, tail[pos : pos + size]))
        pos += size
    if pos != len(tail):
        raise RequestError(f"{len(tail) - pos} bytes after the JSON header are not claimed by any binary_data_size")
    outputs = None if req.outputs is None else [_output_request(o) for o in req.outputs]
    return InferRequest(req.id, req.parameters, inputs, outputs)


def encode_infer_response(header: dict[str, Any], blobs: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """JSON header (+ binary blobs in output order) -> (body, extra headers)."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if not blobs:
        return head, {"Content-Type": "application/json"}
    return head + b"".join(blobs), {
        "Content-Type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }
