"""torch.hub entry points: the pretrained gitaug generators.

    import torch
    aug = torch.hub.load("<owner>/gitaug", "digits_rot_lt")          # from GitHub
    aug = torch.hub.load("path/to/gitaug", "digits_rot_lt", source="local")

Each entry returns a :class:`gitaug.GITAugment`; keyword arguments go to
``GITAugment.from_pretrained`` (``sampler``, ``mean``, ``std``, ``device``, ...).
``pretrained(name, **kwargs)`` loads any name of ``gitaug.list_pretrained()``.
"""

dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub", "numpy"]


def pretrained(name: str, **kwargs):
    """A pretrained generator by name (see ``gitaug.list_pretrained()``), as a ``GITAugment``."""
    from gitaug import GITAugment, list_pretrained

    if name not in list_pretrained():
        raise ValueError(f"name must be one of {list_pretrained()}, got {name!r}")
    return GITAugment.from_pretrained(name, **kwargs)


def digits_rot_lt(**kwargs):
    """Rotation of 28x28 gray digits (fitted on digits-rot-lt), as a ``GITAugment``."""
    return pretrained("digits-rot-lt", **kwargs)


def digits_bg_lt(**kwargs):
    """Background intensity of 28x28 gray digits (fitted on digits-bg-lt), as a ``GITAugment``."""
    return pretrained("digits-bg-lt", **kwargs)


def digits_dil_lt(**kwargs):
    """Stroke dilation and erosion of 28x28 gray digits (fitted on digits-dil-lt), as a ``GITAugment``."""
    return pretrained("digits-dil-lt", **kwargs)


def fmnist_rot_lt(**kwargs):
    """Rotation of 28x28 gray clothing (fitted on fmnist-rot-lt by the default fit), as a ``GITAugment``."""
    return pretrained("fmnist-rot-lt", **kwargs)


def fmnist_bg_lt(**kwargs):
    """Background intensity of 28x28 gray clothing (fitted on fmnist-bg-lt by the default fit), as a ``GITAugment``."""
    return pretrained("fmnist-bg-lt", **kwargs)


def fmnist_dil_lt(**kwargs):
    """Dilation and erosion of 28x28 gray clothing (fitted on fmnist-dil-lt by the default fit), as a ``GITAugment``."""
    return pretrained("fmnist-dil-lt", **kwargs)
