"""Timestep respacing (Improved DDPM, sec. 4): a diffusion over a subsequence S of the steps.

The respaced chain keeps alpha-bar at the kept steps, so its betas are
beta_i = 1 - abar_{S_i} / abar_{S_{i-1}}; the model is still called with the original
indices through ``timestep_map``.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import numpy as np

from .gaussian import GaussianDiffusion


def space_timesteps(num_timesteps: int, spec: Union[str, int, Sequence[int]]) -> List[int]:
    """Choose the kept steps, sorted ascending.

    ``spec`` is "ddimN" (N steps at a uniform integer stride, starting at 0, as DDIM does),
    a comma-separated count per equal section ("10,15,20"), an int (one section),
    or an explicit list of indices.
    """
    T = int(num_timesteps)
    if isinstance(spec, (list, tuple, np.ndarray)):
        steps = sorted({int(s) for s in spec})
        if not steps or steps[0] < 0 or steps[-1] >= T:
            raise ValueError(f"explicit timesteps must lie in [0, {T - 1}], got {list(spec)[:10]}")
        return steps
    if isinstance(spec, str) and spec.startswith("ddim"):
        n = int(spec[len("ddim"):])
        for stride in range(1, T + 1):
            if len(range(0, T, stride)) == n:
                return list(range(0, T, stride))
        raise ValueError(f"cannot take exactly {n} steps out of {T} at an integer stride; "
                         "use a section count such as '50' instead")
    counts = [int(c) for c in str(spec).split(",") if c.strip()]
    if not counts:
        raise ValueError(f"empty respacing spec {spec!r}")
    size, extra = divmod(T, len(counts))
    steps, start = [], 0
    for i, count in enumerate(counts):
        section = size + (1 if i < extra else 0)
        if not 1 <= count <= section:
            raise ValueError(f"section {i} has {section} steps; cannot take {count} "
                             f"(respacing {spec!r} of {T} steps)")
        # Evenly spaced, including both ends of the section, the stride added up in floating
        # point and rounded as improved-diffusion's respace.py does (j * stride rounds
        # differently at some .5 ties, e.g. '27,13,7' of 1000).
        stride, position = ((section - 1) / (count - 1) if count > 1 else 1), 0.0
        for _ in range(count):
            steps.append(start + round(position))
            position += stride
        start += section
    return sorted(set(steps))


def respace(diffusion: GaussianDiffusion, spec) -> GaussianDiffusion:
    """Return the diffusion of the kept subsequence; its ``timestep_map`` holds the
    model's original indices (composed if ``diffusion`` was already respaced)."""
    keep = space_timesteps(diffusion.num_timesteps, spec)
    abar = diffusion.alphas_cumprod[keep]
    abar_prev = np.append(1.0, abar[:-1])
    betas = 1.0 - abar / abar_prev
    return GaussianDiffusion(betas, diffusion.mean_type, diffusion.var_type, diffusion.loss_type,
                             timestep_map=diffusion.timestep_map[keep])
