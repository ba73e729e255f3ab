"""The shared sampler contract.

A sampler knows its timestep pairs (t, t_prev) in its diffusion's index space and a
``step(model, x, t, t_prev, noise) -> (x_prev, pred_x0)``. One progressive generator
drives any sampler; ``sample`` and ``progressive`` consume it.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

import paddle

from ..diffusion import GaussianDiffusion
from ..runtime.progress import progress as progress_display
from .classifier_guidance import ClassifierGuidance, guided_model
from .noise import NoiseStream


def to_unit_range(x: paddle.Tensor, model) -> paddle.Tensor:
    """Map samples from the model's data range (``model.data_range``) to [-1, 1]."""
    lo, hi = getattr(model, "data_range", (-1.0, 1.0))
    if (lo, hi) == (-1.0, 1.0):
        return x
    return (x - lo) / (hi - lo) * 2.0 - 1.0


class Sampler:
    """Base class; subclasses set ``self.diffusion`` and ``self.steps`` and define ``step``."""

    diffusion: GaussianDiffusion
    steps: List[Tuple[int, int]]  # (t, t_prev) pairs from the noisiest step down; t_prev -1 ends

    guided = False   # set by progressive(): whether this run is guided

    def __init__(self, clip_denoised: bool = True, model_kwargs: Optional[dict] = None,
                 clipped_eps: Optional[bool] = None, threshold: Optional[float] = None):
        """``clipped_eps``: re-derive eps from the clipped (or thresholded) x0; None (the
        default) does so in guided runs only, where the model's eps beside a clipped x0
        overshoots (README, "Guided sampling and x0 clipping"). ``threshold``: Imagen's
        dynamic thresholding of x0 at that quantile, instead of the static clip."""
        self.clip_denoised = clip_denoised
        self.model_kwargs = model_kwargs or {}
        self.clipped_eps = None if clipped_eps is None else bool(clipped_eps)
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold is a quantile in (0, 1], got {threshold}")
        self.threshold = threshold

    @property
    def eps_from_clipped_x0(self) -> bool:
        """``clipped_eps`` as this run uses it (None: only when guided)."""
        return self.guided if self.clipped_eps is None else self.clipped_eps

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    def reset(self) -> None:
        """Forget per-run state (a multistep solver's history); called by ``progressive``."""

    def step(self, model, x, t: int, t_prev: int, noise):
        """One reverse step from x_t to x_{t_prev}; ``t`` and ``t_prev`` are plain ints.
        ``noise`` is None for a step after the last one that ``uses_noise``."""
        raise NotImplementedError

    def uses_noise(self, t: int, t_prev: int) -> bool:
        """Whether ``step(t, t_prev)`` reads its noise (deterministic samplers: never). Noise
        past the last step that reads it is not drawn: DDIM with eta 0 draws only x_T."""
        return True

    def progressive(self, model, shape: Sequence[int], every: int = 1, seed: int = 0,
                    index_offset: int = 0, noise: Optional[paddle.Tensor] = None,
                    progress: bool = False, y=None, guidance_scale: float = 0.0,
                    classifier: Optional[ClassifierGuidance] = None) -> Iterator[dict]:
        """Yield {"t", "x", "pred_x0"} every ``every`` steps and after the last step.

        ``x`` is x_{t_prev} after the step, in [-1, 1] model space; image ``i`` of the batch is
        image ``index_offset + i`` of the run (its noise depends only on seed and that index).
        ``noise``, if given, replaces x_T (the per-step noise still comes from the stream).
        ``y``: class labels of the batch (a conditional model), sampled with classifier-free
        guidance of scale ``guidance_scale`` (ppddpm.guidance; 0: the conditional model).
        ``classifier``: classifier guidance towards the classes ``y`` (classifier_guidance.py).
        """
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.reset()
        self.guided = (y is not None and guidance_scale != 0) or classifier is not None
        N = int(shape[0])
        model = guided_model(model, y, guidance_scale, classifier)   # steps call model(x, t)
        # Step i reads draw i + 1 of each image's stream (draw 0 is x_T), as long as any
        # step from i on reads noise; after the last such step nothing more is drawn.
        last_noisy = max((i for i, (t, t_prev) in enumerate(self.steps)
                          if self.uses_noise(t, t_prev)), default=-1)
        stream = NoiseStream(seed, range(index_offset, index_offset + N), shape[1:],
                             max_draws=last_noisy + 2)
        x = stream.next()
        if noise is not None:
            x = paddle.to_tensor(noise, dtype="float32")
        # a bar on a terminal, plain lines in a log (runtime/progress.py)
        bar = progress_display(self.steps, desc=type(self).__name__, unit="step",
                               enabled=progress, leave=False)
        for i, (t, t_prev) in enumerate(bar):
            # no_grad around each step only: a generator suspended (or abandoned) inside a
            # no_grad context would leave gradients off for the whole process meanwhile.
            with paddle.no_grad():
                x, pred_x0 = self.step(model, x, t, t_prev,
                                       stream.next() if i <= last_noisy else None)
            if (i + 1) % every == 0 or i + 1 == len(self.steps):
                yield {"t": t_prev, "x": to_unit_range(x, model),
                       "pred_x0": to_unit_range(pred_x0, model)}

    def sample(self, model, shape: Sequence[int], seed: int = 0, index_offset: int = 0,
               noise: Optional[paddle.Tensor] = None, progress: bool = True, y=None,
               guidance_scale: float = 0.0,
               classifier: Optional[ClassifierGuidance] = None) -> paddle.Tensor:
        """Draw a batch; returns the final x_0 in [-1, 1]. ``y``/``guidance_scale``/
        ``classifier``: see ``progressive``."""
        last = None
        for last in self.progressive(model, shape, every=len(self.steps), seed=seed,
                                     index_offset=index_offset, noise=noise, progress=progress,
                                     y=y, guidance_scale=guidance_scale, classifier=classifier):
            pass
        return last["x"]
