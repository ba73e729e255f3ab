"""Everything sampling needs from a weights file, shared by ``--mode denoise`` (cli.py) and
``--mode eval`` (evaluate.py): the network wrapped in its engine, the sampler the config asks
for, the image shape the file was trained at, and the N-R-C grid of the request.

Takes a Config and plain arguments, never the command line's namespace.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

from .config import Config
from .errors import CheckpointError


class SamplingSetup(NamedTuple):
    model: object                 # model(x, t, y=None): an engine or the dygraph network
    sampler: object               # a ppddpm.samplers.Sampler
    shape: list                   # [C, H, W] of one image, as the file's config says
    grid: Tuple[int, int, int]    # (N, rows, cols) of sample.num_images
    file_config: Config           # the config stored in (or read off) the weights file


# Below this many parameters, without ONNX Runtime, the dynamic graph is at least as fast as
# the predictor and needs no export (benchmarks/RESULTS.md: a 651K-parameter 16x16 UNet and the
# 2-D toy MLP, against the 35.7M CIFAR-10 UNet).
SMALL_MODEL_PARAMS = 1_000_000


def choose_engine_kind(kind: str, shape: Sequence[int], num_params: Optional[int] = None) -> str:
    """Resolve ``auto`` by the measured rule. The dynamic graph on a GPU, and for the 2-D toy
    MLP: the trainer draws its sample points in the dygraph, and ``--mode denoise`` of the EMA
    file reproduces them exactly (ONNX Runtime would be 4-10x faster, to float32 rounding).
    On the CPU with the onnx extra installed, ``auto`` (make_engine then tries ONNX Runtime
    first, the predictor second): ONNX Runtime was the fastest at every size measured, a
    651K-parameter UNet included. Without it, the dynamic graph below SMALL_MODEL_PARAMS and
    ``auto`` (the predictor) above."""
    import paddle
    if kind != "auto":
        return kind
    if paddle.get_device().startswith("gpu") or list(shape) == [2, 1, 1]:
        return "dygraph"
    from .engine_onnx import available
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
    from .diffusion import GaussianDiffusion
    from .engine import make_engine
    from .images import parse_num_images
    from .pretrained import load_pretrained
    from .config_checks import checked_sampler
    from .heap import trim_heap
    import paddle
    from .sampling import image_shape

    grid = parse_num_images(cfg.sample.num_images)
    if not pretrained_path:
        raise CheckpointError("sampling needs --pretrained_path (an inference file, training "
                              "checkpoint or original .pdparam)")
    model, diffusion, file_cfg = load_pretrained(pretrained_path, map_config=map_config)
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
