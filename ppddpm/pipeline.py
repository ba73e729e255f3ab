"""Everything sampling needs from a weights file, shared by ``--mode denoise`` (cli/denoise.py)
and ``--mode eval`` (evaluate/run.py): the network wrapped in its engine, the sampler the config asks
for, the image shape the file was trained at, and the N-R-C grid of the request.

Takes a Config and plain arguments, never the command line's namespace.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import paddle

from .config import Config, parse_num_images
from .config.names import CLASSIFIER_ARCHS
from .convert.pretrained import load_pretrained
from .diffusion import GaussianDiffusion
from .engines import make_engine
from .engines.onnx import available
from .errors import CheckpointError
from .runtime.heap import trim_heap
from .samplers import checked_sampler, image_shape


class SamplingSetup(NamedTuple):
    model: object                 # model(x, t, y=None): an engine or the dygraph network
    sampler: object               # a ppddpm.samplers.Sampler
    shape: list                   # [C, H, W] of one image, as the file's config says
    grid: Tuple[int, int, int]    # (N, rows, cols) of sample.num_images
    file_config: Config           # the config stored in (or read off) the weights file


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
    model = make_engine(model, choose_engine_kind(engine, shape, params), image_shape=shape,
                        keep_model=False)
    if not isinstance(model, paddle.nn.Layer):   # an engine: the dygraph weights are garbage now
        trim_heap()
    return SamplingSetup(model, sampler, shape, grid, file_cfg)
