"""Checks for a generator folder from someone else (a Hub repo is untrusted input).

Pure functions, in the order a loader uses them, each raising ``ValueError``
(or ``FileNotFoundError`` for a file that is not where it may be) with a
message that names the file, the field and the value:

1. :func:`file_inside` - the file is a regular file that resolves inside the
   folder it was asked from (a symlink may not lead out of it);
2. :func:`read_json` - ``config.json`` read with a size and nesting bound;
3. :func:`check_format_version` and :func:`check_generator_fields` - strict
   types (``true`` and ``1.0`` are not integers) and a bound on every size
   field, so no architecture can ask for gigabytes;
4. :func:`expected_shapes` - the state-dict shapes the architecture implies,
   built on the meta device (no memory), with a bound on the parameter count;
5. :func:`read_safetensors_header` and :func:`check_weights_header` - the
   weights file's own description of its tensors, read without the data,
   must match those shapes exactly and hold floating-point tensors only.

Only after all of them pass is a module built and the data read, and by then
the data's size is known to be that of a bounded architecture. A hostile
folder fails in milliseconds, with memory in the order of the files' headers.

Example::

    >>> arch = check_generator_fields({"in_channels": 1, "image_size": 16, "dim": 8})
    >>> shapes = expected_shapes(arch)
    >>> shapes["mlp.model.0.weight"]
    (256, 8)
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch

from .generator import MUNITConfig, MUNITGenerator

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_HEADER_BYTES",
    "MAX_PARAMETERS",
    "FIELD_BOUNDS",
    "FLOAT_DTYPES",
    "TensorEntry",
    "file_inside",
    "read_json",
    "check_format_version",
    "check_generator_fields",
    "expected_shapes",
    "header_budget",
    "read_safetensors_header",
    "check_weights_header",
]

#: config.json is a few kilobytes; a megabyte leaves room for large class lists in the metadata.
MAX_CONFIG_BYTES = 1 << 20
#: gitaug writes JSON three levels deep; anything deeper than this is not a gitaug config.
MAX_JSON_DEPTH = 32
#: A safetensors header describes each tensor in about 100 bytes; a generator has a few hundred tensors.
MAX_HEADER_BYTES = 1 << 20
#: The paper's generator has about 15 M parameters; 100 M is 400 MB of float32 weights.
MAX_PARAMETERS = 100_000_000
#: Elements of the widest full-resolution feature map of one image (dim x image_size ** 2), about 256 MB
#: in float32: the generator's first activations at the first call, which the weights file does not bound.
MAX_FEATURE_MAP = 1 << 26

#: Inclusive bounds of every integer field of :class:`~gitaug.MUNITConfig`.
FIELD_BOUNDS: dict[str, tuple[int, int]] = {
    "in_channels": (1, 3),  # and 1 or 3 only, as MUNITConfig says
    "image_size": (4, 1024),
    "dim": (1, 1024),
    "mlp_dim": (1, 8192),
    "style_dim": (1, 1024),
    "n_downsample": (0, 6),
    "n_res": (0, 32),
    "style_n_downsample": (0, 8),
    "n_mlp": (2, 16),
}
_STRING_FIELDS = ("activation", "pad_type", "warp")

#: safetensors dtype names and their sizes in bytes.
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
#: The weight dtypes a generator may be stored in; others (integers, booleans, 8-bit floats) are refused.
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def _describe(value: Any) -> str:
    """A JSON value as the file spells it, with its type: ``true (bool)``, ``1.0 (float)``."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


# --------------------------------------------------------------------------- files


def file_inside(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``path`` resolved, if it is a regular file inside ``root`` (also resolved); else an error.

    A symlink in a downloaded folder must not lead to a file elsewhere on the
    machine, and a FIFO or device node must not be opened (reading one could
    block forever or never end).
    """
    path, root = Path(path), Path(root)
    real, real_root = path.resolve(), root.resolve()
    if not real.is_relative_to(real_root):
        raise FileNotFoundError(
            f"{path.name} in {str(root)!r} resolves to {str(real)!r}, outside that folder; "
            "a generator folder may not point to files elsewhere"
        )
    try:
        mode = real.stat().st_mode
    except OSError as err:
        raise FileNotFoundError(f"{path.name} in {str(root)!r} cannot be read: {err}") from err
    if not stat.S_ISREG(mode):
        raise FileNotFoundError(f"{path.name} in {str(root)!r} is not a regular file")
    return real


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{what} is {size:,} bytes, more than the {limit:,} a gitaug generator's can be")
    with open(path, "rb") as f:
        data = f.read(limit + 1)  # the file may have grown since stat
    if len(data) > limit:
        raise ValueError(f"{what} is more than the {limit:,} bytes a gitaug generator's can be")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse_json(text: str | bytes, what: str, max_depth: int) -> Any:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply (more than {max_depth} levels)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{what} is not valid JSON ({err})") from err
    # Walk without recursion: depth below the interpreter's limit can still be absurd.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"{what} is nested too deeply (more than {max_depth} levels)")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_CONFIG_BYTES, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """Parse a JSON object from ``path``, refusing large files, deep nesting, NaN/Infinity and non-objects."""
    path = Path(path)
    value = _parse_json(_read_bounded(path, max_bytes, path.name), path.name, max_depth)
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} must hold a JSON object, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- the config


def check_format_version(value: Any, supported: int, filename: str = "config.json") -> int:
    """``format_version`` must be the integer ``supported`` (``true`` and ``1.0`` are not)."""
    if value is None:
        raise ValueError(f"{filename} has no 'format_version': it is not a gitaug generator config")
    if type(value) is not int:
        raise ValueError(f"format_version in {filename} must be an integer, got {_describe(value)}")
    if value != supported:
        raise ValueError(
            f"unsupported format_version {value!r} in {filename}; this gitaug reads version "
            f"{supported} (a newer gitaug may be needed)"
        )
    return value


def check_generator_fields(data: Any) -> MUNITConfig:
    """A :class:`~gitaug.MUNITConfig` from an untrusted mapping: strict types and bounded sizes first.

    Every integer field must be a JSON integer (not ``true``, not ``1.0``)
    within :data:`FIELD_BOUNDS`; string fields must be strings. The widest
    feature map (``dim * image_size ** 2``) is bounded too, since it sets the
    memory of the first call and no weight shape depends on ``image_size``.
    """
    if not isinstance(data, dict):
        raise ValueError(f"the generator architecture must be a JSON object, got {_describe(data)}")
    known = {f.name for f in fields(MUNITConfig)}
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise ValueError(f"unknown MUNITConfig field(s) {unknown}; known fields: {sorted(known)}")
    for name, (low, high) in FIELD_BOUNDS.items():
        if name not in data:
            continue
        value = data[name]
        if type(value) is not int:
            raise ValueError(f"{name} must be an integer, got {_describe(value)}")
        if name == "in_channels" and value not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {value}")
        if not low <= value <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    for name in _STRING_FIELDS:
        if name in data and not isinstance(data[name], str):
            raise ValueError(f"{name} must be a string, got {_describe(data[name])}")
    for name in ("in_channels", "image_size"):
        if name not in data:
            raise ValueError(f"MUNITConfig is missing required field {name!r}")
    arch = MUNITConfig.from_dict(data)
    if arch.dim * arch.image_size**2 > MAX_FEATURE_MAP:
        raise ValueError(
            f"dim * image_size ** 2 = {arch.dim} * {arch.image_size} ** 2 is more than {MAX_FEATURE_MAP:,}: "
            "one image's first feature map would not fit in memory"
        )
    return arch


def expected_shapes(arch: MUNITConfig, *, max_parameters: int = MAX_PARAMETERS) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of ``MUNITGenerator(arch)``, built on the meta device (it allocates nothing).

    Raises ``ValueError`` when the architecture has more than
    ``max_parameters`` parameters.
    """
    # The residual blocks' 3x3 convolutions alone (two per block in the encoder, two in the decoder) and
    # the style MLP's last layer are a lower bound on the count: it refuses a vast architecture without
    # building even its meta-device modules.
    channels = arch.dim * 2**arch.n_downsample
    at_least = arch.n_res * 4 * 9 * channels**2 + arch.mlp_dim * arch.n_res * 4 * channels
    if at_least > max_parameters:
        raise ValueError(
            f"the generator architecture has more than {at_least:,} parameters, more than the {max_parameters:,} "
            "a gitaug generator may have"
        )
    with torch.device("meta"):
        state = MUNITGenerator(arch).state_dict()
    shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
    total = sum(math.prod(shape) for shape in shapes.values())
    if total > max_parameters:
        raise ValueError(
            f"the generator architecture has {total:,} parameters, more than the {max_parameters:,} "
            "a gitaug generator may have"
        )
    return shapes


# --------------------------------------------------------------------------- the weights file


def header_budget(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """The most header bytes a weights file holding ``shapes`` needs (about 150 per tensor; 512 allowed).

    Passed as ``max_header_bytes`` to :func:`read_safetensors_header`, it
    keeps a header from being much larger than the tensors it has to describe.
    """
    return min(MAX_HEADER_BYTES, 4096 + 512 * len(shapes))


class TensorEntry(NamedTuple):
    """One tensor as a safetensors header describes it."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def read_safetensors_header(
    path: str | os.PathLike, *, max_header_bytes: int = MAX_HEADER_BYTES
) -> dict[str, TensorEntry]:
    """The tensors a safetensors file describes (name, dtype, shape, byte range), read without their data.

    The format: an 8-byte little-endian header length, a JSON header of that
    many bytes, then the data. Every entry is checked (a known dtype, a shape
    of non-negative integers, a byte range that fits its shape), and the
    byte ranges must tile the data exactly, as safetensors requires, so that
    a header cannot claim more data than the file holds.
    """
    path = Path(path)
    corrupt = f"{path.name} is corrupt or truncated and cannot be read"
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{corrupt}: {size} bytes is too short for a safetensors header")
        header_bytes = int.from_bytes(prefix, "little")
        if header_bytes > max_header_bytes:
            raise ValueError(
                f"{corrupt}: its header claims {header_bytes:,} bytes, more than the {max_header_bytes:,} "
                "a gitaug generator's can take"
            )
        if 8 + header_bytes > size:
            raise ValueError(f"{corrupt}: its header claims {header_bytes:,} bytes, the file holds {size:,}")
        raw = f.read(header_bytes)
    if len(raw) != header_bytes:
        raise ValueError(f"{corrupt}: the header ends early")
    try:
        header = _parse_json(raw.decode("utf-8"), f"the header of {path.name}", max_depth=4)
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{corrupt}: {err}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{corrupt}: its header is not a JSON object")
    header.pop("__metadata__", None)

    entries: dict[str, TensorEntry] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{corrupt}: tensor {name!r} has a malformed header entry {_describe(entry)}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
            raise ValueError(f"{corrupt}: tensor {name!r} has an unknown dtype {_describe(dtype)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError(f"{corrupt}: tensor {name!r} has an invalid shape {_describe(shape)}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise ValueError(f"{corrupt}: tensor {name!r} has invalid data offsets {_describe(offsets)}")
        if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise ValueError(
                f"{corrupt}: tensor {name!r} of shape {tuple(shape)} and dtype {dtype} "
                f"does not fill its {offsets[1] - offsets[0]:,} bytes"
            )
        entries[name] = TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])

    data_bytes = size - 8 - header_bytes
    position = 0
    for entry in sorted(entries.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin != position:
            raise ValueError(f"{corrupt}: its tensors' byte ranges overlap or leave gaps")
        position = entry.end
    if position != data_bytes:
        raise ValueError(f"{corrupt}: its header describes {position:,} bytes of data, the file holds {data_bytes:,}")
    return entries


def check_weights_header(
    entries: Mapping[str, TensorEntry], shapes: Mapping[str, tuple[int, ...]], filename: str = "model.safetensors"
) -> None:
    """The weights file must hold exactly the tensors ``shapes`` names, with those shapes, in a float dtype."""
    missing = sorted(set(shapes) - set(entries))
    unexpected = sorted(set(entries) - set(shapes))
    if missing:
        raise ValueError(f"{filename} does not fit the config: tensor {missing[0]!r} is missing ({len(missing)} in all)")
    if unexpected:
        raise ValueError(
            f"{filename} does not fit the config: unexpected tensor {unexpected[0]!r} ({len(unexpected)} in all)"
        )
    for name, entry in entries.items():
        if entry.shape != shapes[name]:
            raise ValueError(
                f"{filename} does not fit the config: tensor {name!r} has shape {entry.shape}, "
                f"the config needs {shapes[name]}"
            )
        if entry.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{filename}: tensor {name!r} has dtype {entry.dtype}; generator weights must be "
                f"floating point ({', '.join(FLOAT_DTYPES)})"
            )
