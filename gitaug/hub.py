"""Generators on disk and on the Hugging Face Hub, through ``huggingface_hub``'s own ``PyTorchModelHubMixin``.

:class:`~gitaug.MUNITGenerator` inherits :class:`GeneratorHubMixin`, so it has
the mixin's ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``. A
generator folder, identical on disk and on the Hub::

    config.json          format version, architecture, training metadata (written last:
                         a folder with a config is a complete one)
    model.safetensors    the weights (never pickle)
    README.md            a model card (huggingface_hub's ModelCard, library_name "gitaug")
    samples.png          optional: a grid of generated samples shown in the card

What gitaug adds to the mixin, and why:

* ``from_pretrained`` parses and checks ``config.json`` itself before anything
  is built (the mixin's reader hands raw JSON errors through, and would build
  the model from an unchecked config), accepts a ``gitaug-fit`` run folder
  for its ``generator/`` export, and turns Hub errors into messages that say
  whether a local folder or a Hub repo was meant. Downloads still go through
  ``hf_hub_download`` with the mixin's arguments (``revision``,
  ``cache_dir``, ``force_download``, ``local_files_only``, ``token``), so
  the cache, ``HF_HUB_OFFLINE=1`` and ``HF_ENDPOINT`` behave as everywhere.
* ``_from_pretrained`` checks the weights against the config (names, shapes,
  finite values) before loading them.
* ``_save_pretrained`` writes every file atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from huggingface_hub import ModelCard, ModelCardData, PyTorchModelHubMixin
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ._files import atomic_write, write_text

if TYPE_CHECKING:
    from .generator import MUNITGenerator

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "GeneratorHubMixin",
    "is_generator_folder",
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
RUN_EXPORT_DIR = "generator"  # where gitaug-fit puts the export inside a run folder

_CARD_TEMPLATE = """---
{{ card_data }}
---

# gitaug generator

A class-agnostic MUNIT-style generator for Generative Invariance Transfer (GIT). It re-draws an
image under the nuisance transformations of the data it was fitted on (its content code is kept,
its style code is drawn at random), so that classifier training can give tail classes the
invariance the head classes teach.

## Use

```python
from gitaug import GITAugment, ClassThresholdSampler

sampler = ClassThresholdSampler(class_counts, threshold=25, p=0.5)
aug = GITAugment.from_pretrained("{{ repo_id }}", sampler=sampler)
images, labels = aug(images, labels)  # float images in [0, 1]
```

## Architecture

{{ architecture }}
{% if training %}
## Training

{{ training }}
{% endif %}{% if samples %}
## Samples

Each row: a real input (first column), then generated variants of it.

![samples]({{ samples }})
{% endif %}"""


def is_generator_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a complete generator folder (its config is written last, so its presence says so).

    Example::

        >>> is_generator_folder("no/such/folder")
        False
    """
    path = Path(path)
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


class GeneratorHubMixin(
    PyTorchModelHubMixin,
    library_name="gitaug",
    tags=["gitaug", "generative-invariance-transfer", "long-tailed-learning", "data-augmentation"],
    paper_url="https://arxiv.org/abs/2203.09739",
    model_card_template=_CARD_TEMPLATE,
):
    """Hub I/O of :class:`~gitaug.MUNITGenerator` (see the module docstring).

    ``training_metadata`` (a JSON-serializable dict) is stored under
    ``"training"`` in ``config.json`` and listed in the model card.
    """

    training_metadata: dict[str, Any]

    # ------------------------------------------------------------------ saving

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | os.PathLike,
        *,
        metadata: Mapping[str, Any] | None = None,
        samples_image: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Write the generator folder; ``metadata`` replaces ``training_metadata``, ``samples_image`` is copied in.

        Other keywords (``push_to_hub``, ``repo_id``, ``model_card_kwargs``, ...)
        are the mixin's.
        """
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        if metadata is not None:
            self.training_metadata = dict(metadata)
        try:
            json.dumps(self.hub_config())
        except TypeError as err:
            raise ValueError(f"metadata must be JSON-serializable: {err}") from err
        if samples_image is not None:
            source = Path(samples_image)
            if not source.is_file():
                raise FileNotFoundError(f"samples_image {str(source)!r} does not exist")
            if source.resolve() != (directory / SAMPLES_NAME).resolve():
                atomic_write(directory / SAMPLES_NAME, lambda tmp: shutil.copyfile(source, tmp))
        card = directory / CARD_NAME
        if card.is_file() and "library_name: gitaug" in card.read_text(encoding="utf-8", errors="replace"):
            card.unlink()  # our own card from an earlier save: write it anew (a user's README is kept)
        card_kwargs = {
            "repo_id": directory.name,
            "samples": (directory / SAMPLES_NAME).is_file(),
            **(kwargs.pop("model_card_kwargs", None) or {}),
        }
        return super().save_pretrained(directory, model_card_kwargs=card_kwargs, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        # safetensors refuses shared or non-contiguous storage; a detached contiguous copy is always safe.
        state = {name: t.detach().to("cpu").contiguous() for name, t in self.state_dict().items()}  # type: ignore[attr-defined]
        atomic_write(save_directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        # Written here rather than by the mixin: atomically, in gitaug's format, and after the weights.
        write_text(save_directory / CONFIG_NAME, json.dumps(self.hub_config(), indent=2) + "\n")

    def hub_config(self) -> dict[str, Any]:
        """The content of ``config.json``."""
        return {
            "format_version": FORMAT_VERSION,
            "library": "gitaug",
            "architecture": ARCHITECTURE,
            "generator": self.config.to_dict(),  # type: ignore[attr-defined]
            "training": dict(getattr(self, "training_metadata", None) or {}),
        }

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:  # type: ignore[override]
        """Upload the generator folder to ``repo_id`` (created if needed); returns the commit URL.

        Keywords are the mixin's (``token``, ``private``, ``branch``,
        ``commit_message``, ...); the model card's usage line names ``repo_id``.
        """
        card = {"repo_id": repo_id, **(kwargs.pop("model_card_kwargs", None) or {})}
        kwargs.setdefault("commit_message", "Upload gitaug generator")
        info = super().push_to_hub(repo_id, model_card_kwargs=card, **kwargs)
        return str(getattr(info, "commit_url", info))

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        arch = self.config  # type: ignore[attr-defined]
        training = getattr(self, "training_metadata", None) or {}
        architecture = "\n".join(
            [
                f"- {arch.in_channels} channel(s), {arch.image_size}x{arch.image_size} images",
                f"- dim {arch.dim}, mlp_dim {arch.mlp_dim}, style_dim {arch.style_dim}, "
                f"n_downsample {arch.n_downsample}, n_res {arch.n_res}",
                f"- style-driven warp: {arch.warp}",
                f"- {self.num_parameters():,} parameters",  # type: ignore[attr-defined]
            ]
        )
        lines = [f"- {key}: {json.dumps(value) if isinstance(value, (list, dict)) else value}" for key, value in training.items()]
        info = self._hub_mixin_info
        card_data = ModelCardData(**info.model_card_data.to_dict())
        return ModelCard.from_template(
            card_data=card_data,
            template_str=info.model_card_template,
            repo_id=kwargs.get("repo_id", "<repo id or folder>"),
            architecture=architecture,
            training="\n".join(lines),
            samples=SAMPLES_NAME if kwargs.get("samples", False) else "",
            paper_url=info.paper_url,
        )

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        map_location: str | torch.device = "cpu",
        **model_kwargs: Any,
    ) -> "MUNITGenerator":
        """Load a generator from a local folder (or a ``gitaug-fit`` run folder) or a Hub repo id.

        Example::

            generator = MUNITGenerator.from_pretrained("runs/digits-rot-lt")
        """
        source = _local_or_repo(pretrained_model_name_or_path)
        fetch = dict(revision=revision, cache_dir=cache_dir, force_download=force_download,
                     local_files_only=local_files_only, token=token)
        config = read_config(_fetch(source, CONFIG_NAME, **fetch))
        return cls._from_pretrained(model_id=str(source), config=config, map_location=map_location, **fetch,
                                    **model_kwargs)

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | os.PathLike | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any],
        map_location: str | torch.device = "cpu",
        **model_kwargs: Any,
    ) -> "MUNITGenerator":
        if model_kwargs:
            raise TypeError(f"unexpected keyword argument(s) {sorted(model_kwargs)}")
        _untrusted = _checks()
        try:
            arch = _untrusted.check_generator_fields(config["generator"])
            shapes = _untrusted.expected_shapes(arch)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{CONFIG_NAME} holds an invalid generator architecture: {err}") from err
        source: Path | str = Path(model_id) if Path(model_id).is_dir() else model_id
        weights = _fetch(source, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir, force_download=force_download,
                         local_files_only=local_files_only, token=token)
        # Everything the weights file says about itself is checked before a module is built or data is read.
        header = _untrusted.read_safetensors_header(weights, max_header_bytes=_untrusted.header_budget(shapes))
        _untrusted.check_weights_header(header, shapes, WEIGHTS_NAME)
        generator = cls(arch)  # type: ignore[call-arg]
        _load_weights(weights, generator)
        generator.training_metadata = dict(config.get("training") or {})
        return generator.eval().to(map_location)


# --------------------------------------------------------------------------- finding files


def _checks() -> Any:
    # The untrusted-input checks build expected shapes from the generator module, which imports this
    # one for its mixin: they are imported when first needed.
    from . import _untrusted

    return _untrusted


# A Hub repo id is "name" or "namespace/name" of letters, digits, "-", "_" and ".".
_REPO_ID = re.compile(r"^(?!\.)[\w.-]+(/(?!\.)[\w.-]+)?$")


def _local_or_repo(name_or_path: str | os.PathLike) -> Path | str:
    """A local generator folder (a run folder resolves to its export), or a Hub repo id to download from."""
    local = Path(os.path.expanduser(os.fspath(name_or_path)))
    if local.is_dir():
        if not (local / CONFIG_NAME).exists() and is_generator_folder(local / RUN_EXPORT_DIR):
            return local / RUN_EXPORT_DIR  # a gitaug-fit run folder: its export
        return local
    name = os.fspath(name_or_path)
    if not _REPO_ID.match(name) or ".." in name or local.exists():
        raise FileNotFoundError(f"no generator folder at {name!r} (and it is not a Hub repo id)")
    return name


def _fetch(source: Path | str, filename: str, **download: Any) -> Path:
    """The local path of ``filename`` from a folder, or from a Hub repo through the Hub cache."""
    if isinstance(source, Path):
        path = source / filename
        if not path.exists():
            raise FileNotFoundError(f"{str(source)!r} holds no {filename}: it is not a gitaug generator folder")
        return _checks().file_inside(path, source)

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    not_local = f"there is no local folder {source!r}, and "
    try:
        path = Path(hf_hub_download(repo_id=source, filename=filename, **download))
    except RepositoryNotFoundError as err:
        raise FileNotFoundError(
            f"{not_local}Hub repo {source!r} was not found (or is private and no token was given)"
        ) from err
    except RevisionNotFoundError as err:
        raise FileNotFoundError(f"revision {download.get('revision')!r} of Hub repo {source!r} was not found") from err
    # LocalEntryNotFoundError subclasses EntryNotFoundError, so it must be caught first.
    except LocalEntryNotFoundError as err:
        raise FileNotFoundError(
            f"{not_local}{filename!r} of Hub repo {source!r} is not in the local cache and the Hub cannot be reached "
            "(offline mode or no network)"
        ) from err
    except EntryNotFoundError as err:
        raise FileNotFoundError(f"Hub repo {source!r} has no file {filename!r}: it is not a gitaug generator") from err
    except HfHubHTTPError as err:
        raise OSError(f"downloading {filename!r} from Hub repo {source!r} failed: {err}") from err
    # The cache keeps <repo folder>/snapshots/<commit>/<file> as a link into <repo folder>/blobs/.
    snapshot = path.parent
    root = snapshot.parent.parent if snapshot.parent.name == "snapshots" else snapshot
    return _checks().file_inside(path, root)


# --------------------------------------------------------------------------- checking what was read


def read_config(path: Path) -> dict[str, Any]:
    """Parse and check a generator folder's ``config.json`` (untrusted input: bounded size, depth and types)."""
    _untrusted = _checks()
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


def _load_weights(path: Path, generator: torch.nn.Module) -> None:
    """Load weights whose header already passed ``_untrusted.check_weights_header`` (names, shapes, dtypes).

    What the header cannot tell is checked here: that the data is readable and finite.
    float16/bfloat16/float64 tensors are cast to the generator's dtype by ``load_state_dict``.
    """
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path.name} is corrupt or truncated and cannot be read: {err}") from err
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{path.name} is corrupt: tensor {name!r} holds non-finite values")
    generator.load_state_dict(state)


# --------------------------------------------------------------------------- functions


def save_generator(
    generator: "MUNITGenerator",
    directory: str | os.PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    samples_image: str | os.PathLike | None = None,
) -> Path:
    """Write ``generator`` to ``directory`` (``generator.save_pretrained``); returns the folder."""
    from .generator import MUNITGenerator

    if not isinstance(generator, MUNITGenerator):
        raise TypeError(f"generator must be a MUNITGenerator, got {type(generator).__name__}")
    generator.save_pretrained(directory, metadata=metadata if metadata is not None else {}, samples_image=samples_image)
    return Path(directory)


def load_generator(repo_id_or_path: str | os.PathLike, *, device: torch.device | str | None = None,
                   **download: Any) -> tuple["MUNITGenerator", dict[str, Any]]:
    """``(generator, config.json as a dict)`` from a folder or a Hub repo (``MUNITGenerator.from_pretrained``)."""
    from .generator import MUNITGenerator

    generator = MUNITGenerator.from_pretrained(repo_id_or_path, map_location=device or "cpu", **download)
    return generator, generator.hub_config()


def push_folder_to_hub(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload gitaug generator",
) -> str:
    """Upload a saved generator folder whole to ``repo_id`` (created if needed); returns the commit URL."""
    from huggingface_hub import HfApi

    directory = Path(directory)
    if not is_generator_folder(directory):
        raise FileNotFoundError(f"{str(directory)!r} is not a saved gitaug generator folder")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=directory, revision=revision, commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
