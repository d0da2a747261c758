"""Pretrained generators that ship inside the package, loadable offline by name.

Each registered name is a folder next to this file (``config.json``,
``model.safetensors`` in float16, a model card and a sample grid), fitted by
``scripts/fit_pretrained.py`` with ``gitaug fit``. The float16 weights are cast
to the generator's float32 parameters when loaded.

:meth:`gitaug.GITAugment.from_pretrained` resolves a name in this order:

1. an existing local path of that name (a folder you wrote yourself) is
   loaded as a folder, with a warning that it hides the pretrained generator;
2. a registered name loads its packaged folder -- never the Hub, never a
   different generator; if the packaged files are missing (an installation
   without package data) that is an error;
3. anything else goes on to a local folder or a Hub repo id as before.

Example::

    >>> from gitaug import GITAugment, list_pretrained
    >>> list_pretrained()
    ['digits-bg-lt', 'digits-dil-lt', 'digits-rot-lt', 'fmnist-bg-lt', 'fmnist-dil-lt', 'fmnist-rot-lt']
    >>> aug = GITAugment.from_pretrained("digits-rot-lt")
    >>> aug.generator.config.image_size
    28
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PretrainedInfo", "list_pretrained", "pretrained_info", "pretrained_path", "resolve_pretrained"]

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PretrainedInfo:
    """A registered pretrained generator.

    Attributes:
        name: what ``from_pretrained`` takes.
        dataset: the built-in dataset (``gitaug.datasets.load``) it was fitted on.
        description: the nuisance it re-draws.
        hub_repo: the Hub repo holding the same files once published
            (``gitaug push``); ``None`` until then. Loading by name always
            uses the packaged copy.
    """

    name: str
    dataset: str
    description: str
    hub_repo: str | None = None


_REGISTRY = {
    info.name: info
    for info in (
        PretrainedInfo("digits-rot-lt", "digits-rot-lt", "rotation of long-tailed digits (28x28 gray), found by the default fit"),
        PretrainedInfo("digits-bg-lt", "digits-bg-lt", "background intensity of long-tailed digits (28x28 gray), found by the default fit"),
        PretrainedInfo("digits-dil-lt", "digits-dil-lt", "stroke dilation and erosion of long-tailed digits (28x28 gray), found by the default fit"),
        PretrainedInfo("fmnist-rot-lt", "fmnist-rot-lt", "rotation of long-tailed Fashion-MNIST (28x28 gray), found by the default fit"),
        PretrainedInfo("fmnist-bg-lt", "fmnist-bg-lt", "background intensity of long-tailed Fashion-MNIST (28x28 gray), found by the default fit"),
        PretrainedInfo("fmnist-dil-lt", "fmnist-dil-lt", "dilation and erosion of long-tailed Fashion-MNIST (28x28 gray), found by the default fit"),
    )
}


def _installed(name: str) -> bool:
    folder = _HERE / name
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def list_pretrained() -> list[str]:
    """Names of the pretrained generators installed with this package, sorted."""
    return sorted(name for name in _REGISTRY if _installed(name))


def pretrained_info(name: str) -> PretrainedInfo:
    """The registry entry of ``name``; an unknown name is a ``KeyError`` listing the known ones."""
    if name not in _REGISTRY:
        raise KeyError(f"{name!r} is not a pretrained generator; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def pretrained_path(name: str) -> Path:
    """The packaged folder of a registered name; an error if it is not installed."""
    pretrained_info(name)
    if not _installed(name):
        raise FileNotFoundError(
            f"the pretrained generator {name!r} is registered but its files are missing from {str(_HERE / name)!r}; "
            "reinstall gitaug (a build without package data leaves them out)"
        )
    return _HERE / name


def resolve_pretrained(repo_id_or_path: str | os.PathLike) -> str | os.PathLike:
    """What ``from_pretrained`` should load for ``repo_id_or_path`` (see the module docstring)."""
    if not isinstance(repo_id_or_path, str) or repo_id_or_path not in _REGISTRY:
        return repo_id_or_path
    if os.path.exists(os.path.expanduser(repo_id_or_path)):
        warnings.warn(
            f"loading the local folder {repo_id_or_path!r}, not the pretrained generator of that name; "
            f"pass {str(pretrained_path(repo_id_or_path))!r} for the pretrained one",
            UserWarning,
            stacklevel=3,
        )
        return repo_id_or_path
    return pretrained_path(repo_id_or_path)
