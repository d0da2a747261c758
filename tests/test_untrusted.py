"""Hostile generator folders: every one is a clear error, fast, with bounded memory, before any module is built.

A Hub repo is untrusted input. These folders ask for gigantic architectures, lie in their weights
header, store integer weights, point outside themselves with symlinks, or hold malformed JSON.
"""

import json
import math
import os
import struct
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gitaug import GITAugment
from gitaug._untrusted import MAX_HEADER_BYTES, expected_shapes, read_safetensors_header
from gitaug.generator import MUNITConfig
from gitaug.hub import CONFIG_NAME, WEIGHTS_NAME, load_generator

from helpers import tiny_generator

@pytest.fixture
def saved(tmp_path) -> Path:
    folder = tmp_path / "gen"
    aug = GITAugment(tiny_generator())
    aug.metadata = {"dataset": "unit-test"}
    aug.save_pretrained(folder)
    return folder


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / CONFIG_NAME).read_text())
    for key, value in changes.items():
        if key in config["generator"]:
            config["generator"][key] = value
        else:
            config[key] = value
    (folder / CONFIG_NAME).write_text(json.dumps(config))


def write_header_only(path: Path, header: dict, data_bytes: int = 0) -> None:
    """A safetensors file with this header and ``data_bytes`` zero bytes of data (a sparse file)."""
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + data_bytes)


def header_for(shapes: dict, dtype: str = "F32", itemsize: int = 4) -> tuple[dict, int]:
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape) * itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    return header, offset


# --------------------------------------------------------------------------- oversized architectures and headers

# Each case: (name, how to make the folder hostile, the error it must give). The test measures the
# time and the peak memory each load takes.
OVERSIZED = [
    ("n_res", dict(n_res=10_000), r"n_res must be in \[0, 32\], got 10000"),
    ("n_mlp", dict(n_mlp=10**6), r"n_mlp must be in \[2, 16\], got 1000000"),
    ("mlp_dim", dict(mlp_dim=50_000), r"mlp_dim must be in \[1, 8192\], got 50000"),
    ("dim", dict(dim=20_000), r"dim must be in \[1, 1024\], got 20000"),
    ("image_size", dict(image_size=10**6), r"image_size must be in \[4, 1024\], got 1000000"),
    ("style_dim", dict(style_dim=10**9), r"style_dim must be in \[1, 1024\], got 1000000000"),
    ("n_downsample", dict(n_downsample=40, image_size=1024), r"n_downsample must be in \[0, 6\], got 40"),
    ("within-bounds-but-huge", dict(dim=1024, mlp_dim=8192, n_res=32), r"parameters, more than the 100,000,000"),
    ("feature-map", dict(dim=512, image_size=1024), r"dim \* image_size \*\* 2 = 512 \* 1024 \*\* 2 is more than"),
]


def make_oversized(root: Path) -> list[tuple[str, str, str]]:
    cases = []
    base = root / "base"
    GITAugment(tiny_generator()).save_pretrained(base)
    for name, changes, match in OVERSIZED:
        folder = root / name
        GITAugment(tiny_generator()).save_pretrained(folder)
        edit_config(folder, **changes)
        cases.append((name, str(folder), match))

    # weights headers that lie
    folder = root / "header-length-2**60"
    GITAugment(tiny_generator()).save_pretrained(folder)
    (folder / WEIGHTS_NAME).write_bytes(struct.pack("<Q", 2**60) + b"{}")
    cases.append(("header-length-2**60", str(folder), r"header claims 1,152,921,504,606,846,976 bytes, more than"))

    folder = root / "header-over-the-bound"
    GITAugment(tiny_generator()).save_pretrained(folder)
    write_header_only(folder / WEIGHTS_NAME, {"pad": " " * (MAX_HEADER_BYTES + 10)})
    cases.append(("header-over-the-bound", str(folder), r"more than the [\d,]+ a gitaug generator's can take"))

    folder = root / "ten-thousand-tensors"  # far more header than the architecture's tensors need
    GITAugment(tiny_generator()).save_pretrained(folder)
    header, size = header_for({f"t{i}": (1,) for i in range(10_000)})
    write_header_only(folder / WEIGHTS_NAME, header, size)
    cases.append(("ten-thousand-tensors", str(folder), r"its header claims [\d,]+ bytes, more than the [\d,]+ a gitaug"))

    folder = root / "foreign-tensors"  # a well-formed header within the budget, of other tensors
    GITAugment(tiny_generator()).save_pretrained(folder)
    header, size = header_for({f"t{i}": (1,) for i in range(100)})
    write_header_only(folder / WEIGHTS_NAME, header, size)
    cases.append(("foreign-tensors", str(folder), r"does not fit the config: tensor '\w.+' is missing"))

    folder = root / "terabyte-tensor"
    GITAugment(tiny_generator()).save_pretrained(folder)
    write_header_only(folder / WEIGHTS_NAME, {"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}})
    cases.append(("terabyte-tensor", str(folder), r"header describes 4,000,000,000,000 bytes of data, the file holds 0"))

    # A config at the parameter bound and a header that matches it exactly, but no data behind it.
    folder = root / "matching-header-no-data"
    GITAugment(tiny_generator()).save_pretrained(folder)
    big = dict(dim=128, mlp_dim=2048, n_res=4, style_dim=64)  # about 60 M parameters (240 MB)
    edit_config(folder, **big)
    shapes = expected_shapes(MUNITConfig(in_channels=1, image_size=16, **big))
    header, _ = header_for(shapes)
    write_header_only(folder / WEIGHTS_NAME, header)
    cases.append(("matching-header-no-data", str(folder), r"header describes [\d,]+ bytes of data, the file holds 0"))

    folder = root / "config-100MB"
    GITAugment(tiny_generator()).save_pretrained(folder)
    with open(folder / CONFIG_NAME, "r+b") as f:
        f.truncate(100 * 2**20)
    cases.append(("config-100MB", str(folder), r"config.json is 104,857,600 bytes, more than the 1,048,576"))

    folder = root / "deep-json"
    GITAugment(tiny_generator()).save_pretrained(folder)
    (folder / CONFIG_NAME).write_text('{"format_version": 1, "training": ' + "[" * 200_000 + "]" * 200_000 + "}")
    cases.append(("deep-json", str(folder), r"config.json is nested too deeply"))
    return [(name, folder, match) for name, folder, match in cases] + [("base", str(base), "")]


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (VmHWM) to its current size; False where Linux cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def test_oversized_folders_fail_fast_with_bounded_memory(tmp_path):
    cases = make_oversized(tmp_path)
    GITAugment.from_pretrained(cases[-1][1])  # a valid load first: lazy imports and caches are not counted
    can_measure = os.path.exists("/proc/self/status") and _reset_peak_rss()
    # A guard: a regression fails with MemoryError instead of exhausting the machine.
    resource = pytest.importorskip("resource")
    limits = resource.getrlimit(resource.RLIMIT_AS)
    if can_measure:
        resource.setrlimit(resource.RLIMIT_AS, (_status_kib("VmSize") * 1024 + 2 * 2**30, limits[1]))
    try:
        for name, folder, match in cases[:-1]:
            if can_measure:
                _reset_peak_rss()
                before = _status_kib("VmRSS")
            start = time.perf_counter()
            with pytest.raises(ValueError, match=match):
                GITAugment.from_pretrained(folder)
            seconds = time.perf_counter() - start
            assert seconds < 0.5, f"{name}: took {seconds:.2f} s"
            if can_measure:
                grown = _status_kib("VmHWM") - before
                assert grown < 32 * 1024, f"{name}: peak memory grew by {grown} KiB"
    finally:
        resource.setrlimit(resource.RLIMIT_AS, limits)
    if not can_measure:
        pytest.skip("errors and times checked; this system cannot reset the peak memory figure to measure it")


# --------------------------------------------------------------------------- strict types in config.json


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(in_channels=True), r"in_channels must be an integer, got true \(bool\)"),
        (dict(in_channels=1.0), r"in_channels must be an integer, got 1.0 \(float\)"),
        (dict(in_channels="1"), r"in_channels must be an integer, got \"1\" \(str\)"),
        (dict(dim=8.0), r"dim must be an integer, got 8.0 \(float\)"),
        (dict(n_res=True), r"n_res must be an integer, got true \(bool\)"),
        (dict(n_mlp=None), r"n_mlp must be an integer, got null \(NoneType\)"),
        (dict(image_size=-16), r"image_size must be in \[4, 1024\], got -16"),
        (dict(in_channels=2), r"in_channels must be 1 or 3, got 2"),
        (dict(activation=3), r"activation must be a string, got 3 \(int\)"),
        (dict(activation="gelu"), r"activation must be one of"),
        (dict(generator=[1, 2]), r"has no 'generator' architecture section"),
        (dict(format_version=True), r"format_version in config.json must be an integer, got true \(bool\)"),
        (dict(format_version=1.0), r"format_version in config.json must be an integer, got 1.0 \(float\)"),
        (dict(format_version="1"), r"format_version in config.json must be an integer, got \"1\" \(str\)"),
        (dict(training=[]), r"'training' in config.json must be a JSON object, got list"),
        (dict(training="cats"), r"'training' in config.json must be a JSON object, got str"),
        (dict(architecture=["MUNITGenerator"]), r"unsupported architecture \['MUNITGenerator'\]"),
    ],
    ids=lambda v: None,
)
def test_config_types_are_strict(saved, changes, match):
    edit_config(saved, **changes)
    with pytest.raises(ValueError, match=match):
        GITAugment.from_pretrained(saved)


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"format_version": 1, "training": {"loss": NaN}}', r"not valid JSON \(NaN is not a number JSON allows\)"),
        ('{"format_version": 1, "generator": {"dim": Infinity}}', r"not valid JSON \(Infinity is not"),
        ("[1, 2, 3]", r"config.json must hold a JSON object, got list"),
        ('{"format_version": 1, "training": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}", r"nested too deeply \(more than 32"),
        ('{"format_version": 1, "training": ' + "[" * 100_000 + "]" * 100_000 + "}", r"nested too deeply"),
        ('{"format_version": 1, "generator": {"dim": 1' + "0" * 5000 + "}}", r"config.json is not valid JSON"),
        (b"\xff\xfe{}", r"config.json is not valid JSON"),
    ],
    ids=["nan", "infinity", "list", "depth-40", "depth-100000", "5000-digit-int", "not-utf8"],
)
def test_malformed_json_is_a_clear_error(saved, text, match):
    path = saved / CONFIG_NAME
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=match):
        GITAugment.from_pretrained(saved)


# --------------------------------------------------------------------------- weight dtypes


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool, torch.int8], ids=str)
def test_non_floating_weights_are_refused(saved, dtype):
    state = load_file(saved / WEIGHTS_NAME)
    name = sorted(state)[3]
    state[name] = state[name].to(dtype)
    save_file(state, saved / WEIGHTS_NAME)
    with pytest.raises(ValueError, match=rf"tensor '{name}' has dtype \w+; generator weights must be floating point"):
        GITAugment.from_pretrained(saved)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_half_bfloat16_and_double_files_load_and_are_cast(saved, dtype):
    state = load_file(saved / WEIGHTS_NAME)
    save_file({name: tensor.to(dtype) for name, tensor in state.items()}, saved / WEIGHTS_NAME)
    generator, _ = load_generator(saved)
    assert {p.dtype for p in generator.parameters()} == {torch.float32}  # the default dtype
    for name, tensor in generator.state_dict().items():
        assert torch.equal(tensor, state[name].to(dtype).float()), name  # the stored values, exactly
    aug = GITAugment.from_pretrained(saved)
    out = aug(torch.rand(2, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all()
    # and in the precision the caller asks for
    half = generator.to(torch.bfloat16)
    assert half.sample(torch.rand(2, 1, 16, 16, dtype=torch.bfloat16) * 2 - 1).dtype == torch.bfloat16


def test_a_header_that_lies_about_a_tensors_size(saved):
    header, size = header_for({"w": (4,)})
    header["w"]["data_offsets"] = [0, 8]  # 4 float32 values need 16 bytes
    write_header_only(saved / WEIGHTS_NAME, header, 8)
    with pytest.raises(ValueError, match=r"tensor 'w' of shape \(4,\) and dtype F32 does not fill its 8 bytes"):
        GITAugment.from_pretrained(saved)
    header, size = header_for({"a": (2,), "b": (2,)})
    header["b"]["data_offsets"] = [0, 8]  # overlapping ranges
    write_header_only(saved / WEIGHTS_NAME, header, 8)
    with pytest.raises(ValueError, match="byte ranges overlap or leave gaps"):
        GITAugment.from_pretrained(saved)


def test_the_header_is_read_without_the_data(saved):
    entries = read_safetensors_header(saved / WEIGHTS_NAME)
    state = load_file(saved / WEIGHTS_NAME)
    assert {name: e.shape for name, e in entries.items()} == {name: tuple(t.shape) for name, t in state.items()}
    assert {e.dtype for e in entries.values()} == {"F32"}


# --------------------------------------------------------------------------- files outside the folder


def test_symlinks_out_of_the_folder_are_refused(saved, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        target = outside / name
        (saved / name).rename(target)
        (saved / name).symlink_to(target)
        with pytest.raises(FileNotFoundError, match=rf"{name} in .* resolves to .*elsewhere.*, outside that folder"):
            GITAugment.from_pretrained(saved)
        (saved / name).unlink()
        target.rename(saved / name)
    assert GITAugment.from_pretrained(saved).metadata == {"dataset": "unit-test"}


def test_symlinks_inside_the_folder_and_a_symlinked_folder_are_fine(saved, tmp_path):
    (saved / "blobs").mkdir()
    (saved / WEIGHTS_NAME).rename(saved / "blobs" / "weights")
    (saved / WEIGHTS_NAME).symlink_to(Path("blobs") / "weights")
    link = tmp_path / "link-to-gen"
    link.symlink_to(saved)
    assert GITAugment.from_pretrained(link).metadata == {"dataset": "unit-test"}
    generator, _ = load_generator(saved)
    assert torch.equal(generator.state_dict()["mlp.model.0.weight"], tiny_generator().state_dict()["mlp.model.0.weight"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_refused_without_opening_them(saved):
    (saved / CONFIG_NAME).unlink()
    os.mkfifo(saved / CONFIG_NAME)  # opening it for reading would block forever
    with pytest.raises(FileNotFoundError, match="config.json in .* is not a regular file"):
        GITAugment.from_pretrained(saved)
    (saved / CONFIG_NAME).unlink()
    (saved / CONFIG_NAME).mkdir()
    with pytest.raises(FileNotFoundError, match="config.json in .* is not a regular file"):
        GITAugment.from_pretrained(saved)
