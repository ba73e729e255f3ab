"""Deterministic weights for the legacy-network parity fixture (numpy only, so that
tools/make_legacy_fixture.py can use it next to the original reproduction's code)."""
import zlib

import numpy as np


def fill_weights(named_shapes):
    """Seeded by each parameter's name, fan-in scaled; 1-D '.weight' near 1, biases near 0."""
    out = {}
    for name, shape in named_shapes:
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        z = rng.standard_normal(shape).astype(np.float32)
        if len(shape) > 1:
            out[name] = z / np.float32(np.sqrt(np.prod(shape[1:])))
        elif name.endswith(".weight"):
            out[name] = 1.0 + 0.1 * z
        else:
            out[name] = 0.1 * z
    return out
