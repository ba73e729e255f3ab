"""RePaint (Lugmayr et al. 2022): inpainting with an unconditional diffusion model.

The chain is walked on the sampler's own grid, level K (its noisiest step) down to level 0
(the data). Each reverse step is the sampler's ``step``, and after it the known region is
replaced by its forward sample at the new level (RePaint eq. 8):

  x_{t-1} = m * (sqrt(abar_{t-1}) x0 + sqrt(1 - abar_{t-1}) z) + (1 - m) * x_{t-1}^unknown,

with m = 1 where the image is known (at the data level the known pixels are x0 itself).
Resampling (sec. 4.2): from the levels 1, 1 + jump_length, 1 + 2 jump_length, ... below
K - jump_length + 1 (the paper's timesteps 0, 10, 20, ... of x_t, level = t + 1), the chain
jumps ``jump_n_sample - 1`` times back up ``jump_length`` levels by the forward process
q(x_t | x_s) = N(sqrt(abar_t / abar_s) x_s, (1 - abar_t / abar_s) I) and denoises again, which
lets the generated region agree with the known one. The paper uses 250 steps, jump length 10
and 10 samples (its "schedule"; here with --respacing 250 for DDPM). A multistep solver's
history is cleared after each jump.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import paddle

from ..runtime.progress import progress as progress_display
from ..samplers.base import Sampler, to_unit_range
from ..samplers.classifier_guidance import ClassifierGuidance, guided_model
from ..samplers.noise import NoiseStream
from .common import abar_table, as_tensor, q_sample, to_model_range


def repaint_schedule(num_levels: int, jump_length: int = 10,
                     jump_n_sample: int = 10) -> List[Tuple[int, int]]:
    """The (from level, to level) moves of RePaint's schedule over ``num_levels`` steps:
    one level down is a reverse step, ``jump_length`` up a jump. Starts at num_levels, ends
    at 0; the walk of the paper's get_schedule_jump (its timestep t is level t + 1 here, its
    last step t = 0 -> -1 is level 1 -> 0)."""
    if num_levels < 1 or jump_length < 1 or jump_n_sample < 1:
        raise ValueError("num_levels, jump_length and jump_n_sample must be >= 1, got "
                         f"{num_levels}, {jump_length}, {jump_n_sample}")
    jumps = {j + 1: jump_n_sample - 1 for j in range(0, num_levels - jump_length, jump_length)}
    moves, level = [], num_levels
    while level > 0:
        moves.append((level, level - 1))
        level -= 1
        if jumps.get(level, 0) > 0:
            jumps[level] -= 1
            moves.append((level, level + jump_length))
            level += jump_length
    return moves


def repaint(model, sampler: Sampler, x0: paddle.Tensor, mask: paddle.Tensor,
            jump_length: int = 10, jump_n_sample: int = 10, seed: int = 0,
            index_offset: int = 0, progress: bool = False, y=None, guidance_scale: float = 0.0,
            classifier: Optional[ClassifierGuidance] = None) -> paddle.Tensor:
    """Inpaint ``x0`` ([N, C, H, W] in [-1, 1]) where ``mask`` (broadcastable to it, 1 = keep,
    0 = generate) is 0; returns [-1, 1] images. Image i draws all its noise from the stream
    of (seed, index_offset + i): x_T first, then, move by move, the reverse step's noise and
    the known region's (or the jump's)."""
    model = guided_model(model, y, guidance_scale, classifier)
    x_known = to_model_range(as_tensor(x0), model)
    keep = as_tensor(mask)
    n, shape = x_known.shape[0], list(x_known.shape[1:])
    abar = abar_table(sampler)
    ts = [t for t, _ in sampler.steps] + [sampler.steps[-1][1]]   # level K .. 0 -> timestep
    K = len(sampler.steps)
    t_of = lambda level: ts[K - level]
    moves = repaint_schedule(K, jump_length, jump_n_sample)
    draws = 1 + sum(2 if dst < src else 1 for src, dst in moves)   # x_T, then per move
    stream = NoiseStream(seed, range(index_offset, index_offset + n), shape, max_draws=draws)
    sampler.reset()
    x = stream.next()
    bar = progress_display(moves, desc="RePaint", unit="step", enabled=progress, leave=False)
    for src, dst in bar:
        t, t_dst = t_of(src), t_of(dst)
        with paddle.no_grad():
            if dst < src:   # a reverse step of the sampler, then the known region mixed in
                noise = stream.next() if sampler.uses_noise(t, t_dst) else None
                x, _ = sampler.step(model, x, t, t_dst, noise)
                known = q_sample(float(abar[t_dst + 1]), x_known, stream.next())
                x = keep * known + (1.0 - keep) * x
            else:           # a jump up: q(x_t | x_s) over several levels at once
                ratio = float(abar[t_dst + 1] / abar[t + 1])
                x = math.sqrt(ratio) * x + math.sqrt(1.0 - ratio) * stream.next()
                sampler.reset()
    return to_unit_range(x, model)
