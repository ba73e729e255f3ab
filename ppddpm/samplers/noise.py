"""Per-image noise streams.

Image number ``i`` of a run with seed ``s`` draws all its noise (x_T first, then one
draw per step) from its own generator ``PCG64(SeedSequence([s, i]))``. A sample therefore
depends only on (seed, image index): not on the batch size, the number of ranks, or the
engine that runs the network. Noise is drawn in chunks of steps to keep Python overhead
low; numpy fills a chunk in the same order as separate draws, so chunking changes nothing.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import paddle

CHUNK_BYTES = 64 << 20  # at most this much pre-drawn noise per batch


class NoiseStream:
    def __init__(self, seed: int, indices: Sequence[int], image_shape: Sequence[int],
                 max_draws: Optional[int] = None):
        """``max_draws``: how many draws the run will take at most (x_T and one per step);
        chunks are never larger, so small images do not pre-draw 64 MiB of unused noise."""
        self.image_shape = tuple(int(s) for s in image_shape)
        self.rngs = [np.random.default_rng([int(seed), int(i)]) for i in indices]
        per_draw = int(np.prod(self.image_shape)) * 4 * max(1, len(self.rngs))
        self.max_chunk = max(1, CHUNK_BYTES // per_draw)
        # Chunks grow 1, 2, 4, ... up to max_chunk: a run that needs one draw (DDIM with
        # eta 0 draws only x_T) no longer fills 64 MB (about 1.5 s for 16 CIFAR images).
        if max_draws is not None:   # never more than the run will use
            self.max_chunk = max(1, min(self.max_chunk, int(max_draws)))
        self.chunk = 1
        self._buffer = None
        self._pos = 0

    def _refill(self) -> None:
        shape = (self.chunk,) + self.image_shape
        # [chunk, N, ...]: each image fills its own column from its own generator.
        self._buffer = np.stack([rng.standard_normal(shape, dtype=np.float32)
                                 for rng in self.rngs], axis=1)
        self._pos = 0
        self.chunk = min(2 * self.chunk, self.max_chunk)

    def next(self) -> paddle.Tensor:
        """The next draw for every image, as a float32 tensor [N, *image_shape]."""
        if self._buffer is None or self._pos == self._buffer.shape[0]:
            self._refill()
        out = self._buffer[self._pos]
        self._pos += 1
        return paddle.to_tensor(out)
