"""Saving and loading generators: a folder with a JSON config, safetensors weights and a model card.

The folder layout, identical on disk and on the Hugging Face Hub::

    config.json          format version, architecture, value range, training metadata
    model.safetensors    the generator's weights (never pickle)
    README.md            a model card
    samples.png          optional: a grid of generated samples shown in the card

Downloads go through ``huggingface_hub.hf_hub_download``, so the Hub cache,
``HF_HUB_OFFLINE=1``, ``HF_ENDPOINT``, revisions and tokens behave as in any
other Hugging Face library.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import _untrusted
from ._files import give_default_permissions
from .generator import MUNITGenerator

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "save_generator",
    "load_generator",
    "push_folder_to_hub",
]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
SAMPLES_NAME = "samples.png"
ARCHITECTURE = "MUNITGenerator"


# --------------------------------------------------------------------------- writing


def _atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Write through a temporary file in the same folder, then rename: no half-written file survives."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        give_default_permissions(tmp)  # after writing: a writer may replace the file it was given
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    _atomic_write(path, write)


def save_generator(
    generator: MUNITGenerator,
    directory: str | os.PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    samples_image: str | os.PathLike | None = None,
) -> Path:
    """Write ``generator`` to ``directory`` in the gitaug folder format; returns the folder.

    Args:
        generator: the generator to save.
        directory: created if missing; files already there are replaced.
        metadata: JSON-serializable training metadata (data source, steps,
            class counts, final losses, ...), stored under ``"training"``.
        samples_image: a PNG of generated samples, copied as ``samples.png``
            and shown in the model card.
    """
    if not isinstance(generator, MUNITGenerator):
        raise TypeError(f"generator must be a MUNITGenerator, got {type(generator).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "library": "gitaug",
        "architecture": ARCHITECTURE,
        "generator": generator.config.to_dict(),
        "value_range": [-1.0, 1.0],
        "training": dict(metadata or {}),
    }
    try:
        config_text = json.dumps(config, indent=2, sort_keys=False) + "\n"
    except TypeError as err:
        raise ValueError(f"metadata must be JSON-serializable: {err}") from err

    # safetensors refuses shared or non-contiguous storage; a detached contiguous copy is always safe.
    state = {name: t.detach().to("cpu").contiguous() for name, t in generator.state_dict().items()}
    _atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    has_samples = False
    if samples_image is not None:
        source = Path(samples_image)
        if not source.is_file():
            raise FileNotFoundError(f"samples_image {str(source)!r} does not exist")
        if source.resolve() != (directory / SAMPLES_NAME).resolve():
            _atomic_write(directory / SAMPLES_NAME, lambda tmp: shutil.copyfile(source, tmp))
        has_samples = True
    _write_text(directory / CARD_NAME, _model_card(config, generator.num_parameters(), has_samples))
    # The config goes last: a folder with a config is a complete one.
    _write_text(directory / CONFIG_NAME, config_text)
    return directory


def _model_card(config: dict[str, Any], num_parameters: int, has_samples: bool) -> str:
    arch = config["generator"]
    training = config["training"]
    lines = [
        "---",
        "library_name: gitaug",
        "tags:",
        "- gitaug",
        "- generative-invariance-transfer",
        "- long-tailed-learning",
        "- data-augmentation",
        "---",
        "",
        "# gitaug generator",
        "",
        "A class-agnostic MUNIT-style generator for Generative Invariance Transfer (GIT). "
        "It re-draws an image under the nuisance transformations of the data it was fitted on "
        "(its content code is kept, its style code is drawn at random), so that classifier "
        "training can give tail classes the invariance the head classes teach.",
        "",
        "## Use",
        "",
        "```python",
        "from gitaug import GITAugment, ClassThresholdSampler",
        "",
        "sampler = ClassThresholdSampler(class_counts, threshold=25, p=0.5)",
        'aug = GITAugment.from_pretrained("<this repo or folder>", sampler=sampler)',
        "images, labels = aug(images, labels)  # float images in [0, 1]",
        "```",
        "",
        "## Architecture",
        "",
        f"- {arch['in_channels']} channel(s), {arch['image_size']}x{arch['image_size']} images",
        f"- dim {arch['dim']}, mlp_dim {arch['mlp_dim']}, style_dim {arch['style_dim']}, "
        f"n_downsample {arch['n_downsample']}, n_res {arch['n_res']}",
        f"- style-driven warp: {arch.get('warp', 'none')}",
        f"- {num_parameters:,} parameters",
    ]
    if training:
        lines += ["", "## Training", ""]
        for key, value in training.items():
            if isinstance(value, (list, dict)):
                value = json.dumps(value)
            lines.append(f"- {key}: {value}")
    if has_samples:
        lines += [
            "",
            "## Samples",
            "",
            "Each row: a real input (first column), then generated variants of it.",
            "",
            f"![samples]({SAMPLES_NAME})",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- reading


# A Hub repo id is "name" or "namespace/name" of letters, digits, "-", "_" and ".".
_REPO_ID = re.compile(r"^(?!\.)[\w.-]+(/(?!\.)[\w.-]+)?$")


def _resolve(
    repo_id_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    token: str | bool | None,
) -> Path:
    """Local path of ``filename`` from a folder or a Hub repo (downloaded into the Hub cache)."""
    local = Path(os.path.expanduser(os.fspath(repo_id_or_path)))
    if local.is_dir():
        path = local / filename
        if not path.exists():
            raise FileNotFoundError(f"{str(local)!r} holds no {filename}: it is not a gitaug generator folder")
        return _untrusted.file_inside(path, local)
    name = os.fspath(repo_id_or_path)
    if not _REPO_ID.match(name) or ".." in name or local.exists():
        raise FileNotFoundError(f"no generator folder at {name!r} (and it is not a Hub repo id)")

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = Path(
            hf_hub_download(
                repo_id=name,
                filename=filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
            )
        )
    except RepositoryNotFoundError as err:
        raise FileNotFoundError(f"Hub repo {name!r} was not found (or is private and no token was given)") from err
    except RevisionNotFoundError as err:
        raise FileNotFoundError(f"revision {revision!r} of Hub repo {name!r} was not found") from err
    # LocalEntryNotFoundError subclasses EntryNotFoundError, so it must be caught first.
    except LocalEntryNotFoundError as err:
        raise FileNotFoundError(
            f"{filename!r} of Hub repo {name!r} is not in the local cache and the Hub cannot be reached "
            "(offline mode or no network)"
        ) from err
    except EntryNotFoundError as err:
        raise FileNotFoundError(f"Hub repo {name!r} has no file {filename!r}: it is not a gitaug generator") from err
    except HfHubHTTPError as err:
        raise OSError(f"downloading {filename!r} from Hub repo {name!r} failed: {err}") from err
    # The cache keeps <repo folder>/snapshots/<commit>/<file> as a link into <repo folder>/blobs/.
    snapshot = path.parent
    root = snapshot.parent.parent if snapshot.parent.name == "snapshots" else snapshot
    return _untrusted.file_inside(path, root)


def _read_config(path: Path) -> dict[str, Any]:
    config = _untrusted.read_json(path)
    _untrusted.check_format_version(config.get("format_version"), FORMAT_VERSION, path.name)
    if config.get("architecture") != ARCHITECTURE:
        raise ValueError(f"unsupported architecture {config.get('architecture')!r}; expected {ARCHITECTURE!r}")
    if not isinstance(config.get("generator"), dict):
        raise ValueError(f"{path.name} has no 'generator' architecture section")
    training = config.get("training")
    if training is not None and not isinstance(training, dict):
        raise ValueError(f"'training' in {path.name} must be a JSON object, got {type(training).__name__}")
    return config


def _load_weights(path: Path, generator: MUNITGenerator) -> None:
    # The header was checked against the architecture, so the data read here has a bounded, known size;
    # float16/bfloat16/float64 tensors are cast to the generator's dtype by load_state_dict.
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path.name} is corrupt or truncated and cannot be read: {err}") from err
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise ValueError(f"{path.name} does not fit the config: tensor {missing[0]!r} is missing ({len(missing)} in all)")
    if unexpected:
        raise ValueError(
            f"{path.name} does not fit the config: unexpected tensor {unexpected[0]!r} ({len(unexpected)} in all)"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"{path.name} does not fit the config: tensor {name!r} has shape {tuple(tensor.shape)}, "
                f"the config needs {tuple(expected[name].shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{path.name} is corrupt: tensor {name!r} holds non-finite values")
    generator.load_state_dict(state)


def load_generator(
    repo_id_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    device: torch.device | str | None = None,
) -> tuple[MUNITGenerator, dict[str, Any]]:
    """Load a generator and its config from a local folder or a Hub repo.

    Returns the generator (in eval mode, on ``device`` or the CPU) and the
    parsed ``config.json``.
    """
    kwargs = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    config_path = _resolve(repo_id_or_path, CONFIG_NAME, **kwargs)
    config = _read_config(config_path)
    try:
        arch = _untrusted.check_generator_fields(config["generator"])
        shapes = _untrusted.expected_shapes(arch)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{CONFIG_NAME} holds an invalid generator architecture: {err}") from err
    # Everything the weights file says about itself is checked before a module is built or data is read.
    weights_path = _resolve(repo_id_or_path, WEIGHTS_NAME, **kwargs)
    header = _untrusted.read_safetensors_header(weights_path, max_header_bytes=_untrusted.header_budget(shapes))
    _untrusted.check_weights_header(header, shapes, WEIGHTS_NAME)
    generator = MUNITGenerator(arch)
    _load_weights(weights_path, generator)
    generator.eval()
    if device is not None:
        generator.to(device)
    return generator, config


def push_folder_to_hub(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload gitaug generator",
) -> str:
    """Create ``repo_id`` if needed and upload a saved generator folder; returns the commit URL."""
    from huggingface_hub import HfApi

    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{str(directory)!r} is not a saved gitaug generator folder")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=directory,
        revision=revision,
        commit_message=commit_message,
        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, SAMPLES_NAME],
    )
    return str(getattr(info, "commit_url", info))
