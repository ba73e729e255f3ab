"""Class labels at the boundary: which classes a conditional run trains on, which classes
``--class_label`` asks for, and the label of every image of a grid or evaluation set.

Labels of a run are a pure function of the image index (row of the grid, or index modulo
the number of classes), so they line up with the per-image noise of ``samplers.noise``
whatever the batch size or the number of ranks.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ..config import Config, ConfigError, SampleConfig
from ..errors import DatasetError


def class_names_of(dataset) -> Optional[List[str]]:
    """The names the data set's labels index, or None for an unlabelled set."""
    names = getattr(dataset, "class_names", None)
    return list(names) if names else None


def setup_conditioning(cfg: Config, dataset) -> bool:
    """Before the model is built: with ``train.conditional`` or ``model.num_classes`` set,
    take the number of classes and their names from ``dataset`` (into ``model.num_classes``
    and ``data.class_names``, which every checkpoint saves). Returns True when conditional."""
    if not cfg.train.conditional and cfg.model.num_classes is None:
        return False
    names = class_names_of(dataset)
    asked = "--conditional True" if cfg.train.conditional else \
        f"model.num_classes={cfg.model.num_classes}"
    if names is None:
        raise DatasetError(f"{asked} needs a labelled data set, but data.dataset="
                           f"{cfg.data.dataset!r} has no class labels; use an unconditional "
                           "model (model.num_classes=null, --conditional False) or a labelled set "
                           "(CIFAR-10, MNIST, a toy mixture, an image folder with one "
                           "sub-folder per class)")
    if cfg.model.num_classes is None:
        cfg.model.num_classes = len(names)
    elif cfg.model.num_classes != len(names):
        raise ConfigError(f"model.num_classes={cfg.model.num_classes}, but data.dataset="
                          f"{cfg.data.dataset!r} has {len(names)} classes; set "
                          f"model.num_classes={len(names)} (or leave it null with --conditional True)")
    cfg.data.class_names = names
    return True


def parse_class_label(spec: str, num_classes: int,
                      class_names: Optional[Sequence[str]] = None) -> List[int]:
    """``--class_label``: ``all``, one class, or a comma list; each class by name (as the
    training set named it) or by index 0..num_classes-1."""
    spec = str(spec).strip()
    if spec.lower() == "all":
        return list(range(num_classes))
    names = list(class_names or [])
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if item in names:
            out.append(names.index(item))
        elif item.lstrip("-").isdigit() and 0 <= int(item) < num_classes:
            out.append(int(item))
        else:
            known = f"names {names} or " if names else ""
            raise ConfigError(f"--class_label {item!r} is not a class of this model; give "
                              f"{known}indices 0..{num_classes - 1}, a comma list, or 'all'")
    if not out:
        raise ConfigError("--class_label is empty; give a class, a comma list or 'all'")
    return out


def sampling_classes(sample_cfg: SampleConfig, file_cfg: Config,
                     source: str = "the weights file",
                     classifier_cfg: Optional[Config] = None) -> Optional[List[int]]:
    """The class ids ``sample.class_label`` asks of the model ``file_cfg`` describes, or None
    (no label: an unconditional model, or a conditional one's "no label" branch; with a
    classifier ``classifier_cfg``: random classes, see ``random_labels``). With classifier
    guidance the classes are the classifier's, named as either file names them."""
    spec, num_classes = sample_cfg.class_label, file_cfg.model.num_classes
    names = file_cfg.data.class_names
    if classifier_cfg is not None:
        if sample_cfg.guidance_scale and num_classes is None:
            raise ConfigError(f"--guidance_scale {sample_cfg.guidance_scale:g} (classifier-free "
                              f"guidance) needs a class-conditional model, but {source} is "
                              "unconditional; drop it (the classifier's pull is "
                              "--classifier_scale)")
        num_classes = classifier_cfg.model.num_classes
        names = names or classifier_cfg.data.class_names
    if spec is None or not str(spec).strip():
        if sample_cfg.guidance_scale and classifier_cfg is None:
            raise ConfigError(f"--guidance_scale {sample_cfg.guidance_scale:g} needs "
                              "--class_label (the classes to guide towards)")
        return None
    if num_classes is None:
        raise ConfigError(f"--class_label {spec} needs a class-conditional model, but {source} "
                          "was trained without labels (model.num_classes is null); drop "
                          "--class_label, or train with --conditional True")
    return parse_class_label(spec, num_classes, names)


def random_labels(seed: int, num_images: int, num_classes: int) -> np.ndarray:
    """Random classes for classifier guidance without ``--class_label`` (as guided-diffusion's
    classifier_sample.py draws them): one per image of the run from the sampling seed, so
    every rank of a distributed run draws the same list and takes its share."""
    return np.random.default_rng([int(seed), 0x636c73]).integers(0, num_classes, num_images)


def grid_labels(classes: Sequence[int], num_images: int, rows: int, cols: int) -> np.ndarray:
    """The label of each image of an R x C grid: the rows are split into equal blocks, one
    per class in order (``all`` with R = number of classes: one row per class)."""
    k = len(classes)
    if rows % k:
        raise ConfigError(f"--class_label gives {k} classes, so --num_images needs a number of "
                          f"rows that is a multiple of {k} (one block of rows per class), e.g. "
                          f"{k * cols}-{k}-{cols}; got {rows} rows")
    row = np.arange(num_images) // cols
    return np.asarray(classes, dtype=np.int64)[row * k // rows]


def balanced_labels(classes: Sequence[int], num_images: int) -> np.ndarray:
    """Image i gets classes[i mod k]: a class-balanced set (within one) for any count and
    any contiguous share of it."""
    return np.asarray(classes, dtype=np.int64)[np.arange(num_images) % len(classes)]


def class_name(file_cfg: Config, label: int) -> str:
    names = file_cfg.data.class_names or []
    return names[label] if 0 <= label < len(names) else str(label)
