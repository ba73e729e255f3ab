"""Everything sampling needs from a weights file, shared by ``--mode denoise`` (cli/denoise.py)
and ``--mode eval`` (evaluate/run.py): the network wrapped in its engine, the sampler the config asks
for, the image shape the file was trained at, and the N-R-C grid of the request.

Takes a Config and plain arguments, never the command line's namespace.
"""
from __future__ import annotations

import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import paddle

from .config import Config, parse_num_images
from .config.names import CLASSIFIER_ARCHS
from .convert.pretrained import load_pretrained
from .data.labels import balanced_labels, random_labels, sampling_classes
from .diffusion import GaussianDiffusion, short_chain_problem
from .engines import make_engine
from .engines.onnx import available
from .errors import CheckpointError, ConfigError
from .runtime.heap import trim_heap
from .samplers import checked_sampler, image_shape
from .samplers.classifier_guidance import ClassifierGuidance


class SamplingSetup(NamedTuple):
    model: object                 # model(x, t, y=None): an engine or the dygraph network
    sampler: object               # a ppddpm.samplers.Sampler
    shape: list                   # [C, H, W] of one image, as the file's config says
    grid: Tuple[int, int, int]    # (N, rows, cols) of sample.num_images
    file_config: Config           # the config stored in (or read off) the weights file
    classifier: Optional[ClassifierGuidance] = None   # classifier guidance (sample.classifier_path)
    classifier_config: Optional[Config] = None        # the classifier file's config
    warning: Optional[str] = None   # what the user must hear before sampling (a short chain)


# Below this many parameters, without ONNX Runtime, the dynamic graph is at least as fast as
# the predictor and needs no export (measured in benchmarks/RESULTS.md).
SMALL_MODEL_PARAMS = 1_000_000


def choose_engine_kind(kind: str, shape: Sequence[int], num_params: Optional[int] = None) -> str:
    """Resolve ``auto`` by the measured rule (benchmarks/RESULTS.md). The dynamic graph on a
    GPU, and for the 2-D toy MLP: the trainer draws its sample points in the dygraph, and
    ``--mode denoise`` of the EMA file reproduces them exactly (an engine agrees only to
    float32 rounding). On the CPU with the onnx extra installed, ``auto`` (make_engine then
    tries ONNX Runtime first, the predictor second), the fastest at every size measured.
    Without it, the dynamic graph below SMALL_MODEL_PARAMS and ``auto`` (the predictor) above."""
    if kind != "auto":
        return kind
    if paddle.get_device().startswith("gpu") or list(shape) == [2, 1, 1]:
        return "dygraph"
    if available():
        return "auto"
    if num_params is not None and num_params < SMALL_MODEL_PARAMS:
        return "dygraph"
    return "auto"


def prepare_sampling(cfg: Config, pretrained_path: Optional[str], engine: str = "auto",
                     var_type: Optional[str] = None, map_config=None) -> SamplingSetup:
    """Load ``pretrained_path`` and build what ``cfg.sample`` asks for.

    ``map_config``: the network the caller expects (a ModelConfig), or None to take the
    file's; ``var_type``: a reverse-process variance that replaces the file's.
    """
    grid = parse_num_images(cfg.sample.num_images)
    if not pretrained_path:
        raise CheckpointError("sampling needs --pretrained_path (an inference file, training "
                              "checkpoint or original .pdparam)")
    model, diffusion, file_cfg = load_pretrained(pretrained_path, map_config=map_config)
    if file_cfg.model.arch in CLASSIFIER_ARCHS:
        raise CheckpointError(f"{pretrained_path} is a noisy classifier (arch "
                              f"{file_cfg.model.arch!r}), not a diffusion model: give a diffusion "
                              "model as --pretrained_path and the classifier as --classifier_path")
    if var_type is not None and var_type != diffusion.var_type.value:
        diffusion = GaussianDiffusion(diffusion.betas, diffusion.mean_type, var_type,
                                      diffusion.loss_type)
    sampler = checked_sampler(diffusion, cfg.sample)
    shape = image_shape(file_cfg.model)
    # keep_model=False: the engine holds the weights, so the dygraph copy is freed
    params = sum(int(p.numel()) for p in model.parameters())
    classifier, classifier_cfg = load_classifier(cfg.sample, shape, file_cfg.model.num_classes,
                                                 pretrained_path)
    model = make_engine(model, choose_engine_kind(engine, shape, params), image_shape=shape,
                        keep_model=False)
    if not isinstance(model, paddle.nn.Layer):   # an engine: the dygraph weights are garbage now
        trim_heap()
    problem = short_chain_problem(file_cfg.diffusion, diffusion.betas)
    warning = None if problem is None else (
        f"warning: {pretrained_path} was trained where {problem}; retrain it with a schedule "
        "that ends near alpha-bar_T = 0 (e.g. -o diffusion.beta_schedule=cosine)")
    return SamplingSetup(model, sampler, shape, grid, file_cfg, classifier, classifier_cfg,
                         warning)


def load_classifier(sample_cfg, shape: List[int], model_classes: Optional[int],
                    model_path: str):
    """(ClassifierGuidance, its file's Config) for ``sample.classifier_path``, or (None, None).

    The classifier stays a dynamic-graph Layer (its gradient comes from autograd). It must
    be built for the diffusion model's image shape and, for a class-conditional model, its
    number of classes, and answer ``classifier(x, t)`` with logits [N, num_classes].
    """
    path = sample_cfg.classifier_path
    if not path:
        return None, None
    flag = "--classifier_path"
    if not os.path.isfile(path):
        raise CheckpointError(f"{flag} {path!r} does not exist; give a converted classifier file")
    try:
        classifier, _, ccfg = load_pretrained(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{flag} {path!r} is not a readable weights file: {exc}") from None
    m = ccfg.model
    if m.num_classes is None:
        raise CheckpointError(f"{flag} {path!r} holds a network of arch {m.arch!r} without "
                              "classes (model.num_classes is null), not a classifier")
    if image_shape(m) != list(shape):
        raise ConfigError(f"{flag} {path!r} is a classifier of {m.in_channels}x{m.resolution}"
                          f"x{m.resolution} images, but {model_path} makes {shape[0]}x{shape[1]}"
                          f"x{shape[2]} images; use a classifier of the model's resolution")
    if model_classes is not None and model_classes != m.num_classes:
        raise ConfigError(f"{flag} {path!r} tells {m.num_classes} classes apart, but the "
                          f"class-conditional {model_path} has {model_classes}; use a "
                          "classifier of the same classes")
    with paddle.no_grad():   # one probe image: the classifier's answer must be logits
        out = classifier(paddle.zeros([1] + list(shape)), paddle.zeros([1], "int64"))
    if not isinstance(out, paddle.Tensor) or list(out.shape) != [1, m.num_classes]:
        got = list(out.shape) if isinstance(out, paddle.Tensor) else type(out).__name__
        raise CheckpointError(f"{flag} {path!r} holds a network of arch {m.arch!r} that "
                              f"returns {got} for one image, not the logits [1, "
                              f"{m.num_classes}] of a classifier")
    scale = 1.0 if sample_cfg.classifier_scale is None else sample_cfg.classifier_scale
    return ClassifierGuidance(classifier, scale), ccfg


def class_tag(sample_cfg, num_classes: Optional[int], classifier_scale: Optional[float] = None
              ) -> str:
    """What a conditional or classifier-guided run's outputs add to their name, so that its
    class-3 grid, its guided grid and its unlabelled branch never overwrite each other or an
    unconditional grid: ``_class3``, ``_class0-1-2_w2``, ``_nolabel``, ``_class3_cg1``
    (classifier guidance), ``_classrandom_cg1``; '' for an unconditional, unguided run."""
    spec = sample_cfg.class_label
    spec = "" if spec is None else "-".join(part.strip() for part in str(spec).split(","))
    if classifier_scale is not None:
        return f"_class{spec or 'random'}_cg{classifier_scale:g}"
    if num_classes is None:
        return ""
    if not spec:
        return "_nolabel"
    guided = f"_w{sample_cfg.guidance_scale:g}" if sample_cfg.guidance_scale else ""
    return f"_class{spec}{guided}"


def run_class_tag(sample_cfg, setup: SamplingSetup) -> str:
    """``class_tag`` of a run on this set-up (its model's classes, its classifier's scale)."""
    scale = None if setup.classifier is None else setup.classifier.scale
    return class_tag(sample_cfg, setup.file_config.model.num_classes, scale)


def run_labels(sample_cfg, setup: SamplingSetup, n: int, source: str):
    """(classes, the class of each of n images) of a run: --class_label's classes in turn,
    (None, random classes) under classifier guidance without it, else (None, None)."""
    classes = sampling_classes(sample_cfg, setup.file_config, source, setup.classifier_config)
    if classes is not None:
        return classes, balanced_labels(classes, n)
    if setup.classifier is not None:
        return None, random_labels(sample_cfg.seed, n, setup.classifier_config.model.num_classes)
    return None, None
