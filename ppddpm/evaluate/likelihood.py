"""Test-set negative log-likelihood in bits/dim: the variational bound of DDPM eq. 5, the
figure of DDPM Table 2 and Improved DDPM's likelihood tables (``PUBLISHED``).

Dequantisation. The images are the 8-bit values themselves, x = v / 127.5 - 1, with no
uniform noise added, exactly as Ho's and improved-diffusion's evaluation code feed them.
The decoder L_0 is the discretized Gaussian of DDPM eq. 13: it integrates p(x_0 | x_1) over
each pixel's bin of width 2/255 (the outer bins reach to -inf and +inf), so the bound is on
the *discrete* probability P(v) of the 8-bit image, which is what "bits/dim" means for these
papers. Uniform dequantisation (adding u ~ U[0, 1/127.5) and using a continuous density)
would instead bound the same quantity from further away (E_u[-log p(x + u)] >= -log P(v))
and would put x_0 off the bin centres the decoder assumes, so it is not done here.

Each image's noise comes from its own stream (seed, image index), so the figure does not
depend on the batch size or the number of ranks, and an interrupted run resumes.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Callable, Optional, Tuple

import numpy as np
import paddle

from ..config import ConfigError
from ..data import build_dataset
from ..data.cifar10 import load_cifar10_arrays
from ..data.toy import is_toy
from ..diffusion.losses import calc_bpd_loop
from ..io.files import atomic_write
from ..samplers.noise import NoiseStream
from .resumable import run_resumable

PUBLISHED = {  # CIFAR-10 test set, bits/dim (upper bounds)
    "DDPM Table 2, L (true bound), fixed isotropic variance": "<= 3.70 (train 3.69)",
    "DDPM Table 2, L_simple (the sample-quality model)": "<= 3.75 (train 3.72)",
    "Improved DDPM, L_hybrid, learned variances": "about 3.0 or lower",
}


def test_images(data_cfg) -> Tuple[Callable[[int, int], np.ndarray], int, str]:
    """(get(start, stop) -> float32 NCHW in [-1, 1], count, description) of the test split:
    CIFAR-10's test_batch; other image sets have no test split and fall back to their
    training images (unflipped), which the description says."""
    if data_cfg.dataset == "cifar10":
        images, _ = load_cifar10_arrays(data_cfg.data_dir, train=False, download=data_cfg.download)
        get = lambda a, b: images[a:b].astype(np.float32) / 127.5 - 1.0
        return get, len(images), f"cifar10 test ({len(images)} images)"
    if is_toy(data_cfg.dataset):
        raise ConfigError(f"bits/dim needs 8-bit images; data.dataset={data_cfg.dataset!r} "
                          "is a 2-D point set")
    ds = build_dataset(data_cfg)
    get = lambda a, b: np.stack([ds[(i, False)][0] for i in range(a, b)]).astype(np.float32)
    return get, len(ds), f"{data_cfg.dataset} train ({len(ds)} images; it has no test split)"


def image_bpd(diffusion, model, x0: np.ndarray, seed: int = 0, index_offset: int = 0,
              clip_denoised: bool = True, model_kwargs=None) -> np.ndarray:
    """Per-image [N, 3] float64: total bound, prior term L_T and decoder term L_0, bits/dim.

    Image i draws the noise of every x_t from the stream of (seed, index_offset + i)."""
    stream = NoiseStream(seed, range(index_offset, index_offset + len(x0)), x0.shape[1:],
                         max_draws=diffusion.num_timesteps)
    out = calc_bpd_loop(diffusion, model, paddle.to_tensor(x0), clip_denoised=clip_denoised,
                        model_kwargs=model_kwargs, noise_fn=stream.next)
    cols = [out["total_bpd"], out["prior_bpd"], out["vb"][:, 0]]
    return np.stack([c.numpy().astype(np.float64) for c in cols], axis=1)


def bpd_resumable(diffusion, model, get_images, n: int, batch: int, seed: int, folder: str,
                  meta: dict, clip_denoised: bool = True,
                  progress: bool = True) -> Optional[np.ndarray]:
    """Per-image results [n, 3] on rank 0 (None elsewhere), resumable and distributed
    (resumable.py)."""
    return run_resumable(folder, meta, n, batch,
                         lambda a, b: image_bpd(diffusion, model, get_images(a, b), seed, a,
                                                clip_denoised),
                         "bits/dim", progress)


def summary(per_image: np.ndarray, info: dict) -> dict:
    n = len(per_image)
    sem = float(per_image[:, 0].std(ddof=1) / np.sqrt(n)) if n > 1 else None
    return dict(info, bpd=float(per_image[:, 0].mean()), bpd_stderr=sem,
                prior_bpd=float(per_image[:, 1].mean()), decoder_bpd=float(per_image[:, 2].mean()),
                num_images=n, dequantization="none: 8-bit values at bin centres, discretized "
                "Gaussian decoder (DDPM eq. 13); see ppddpm/evaluate/likelihood.py",
                published=PUBLISHED)


def write_summary(path: str, result: dict) -> None:
    text = json.dumps(result, indent=2)
    atomic_write(path, lambda fh: fh.write(text.encode()))


def evaluate_bpd(model, diffusion, cfg, pretrained_path: str, num_images: int,
                 out_path: Optional[str] = None, iteration: Optional[int] = None,
                 progress: bool = True, say: Callable[[str], None] = print) -> Optional[dict]:
    """--mode eval --metrics bpd: the JSON summary (written by rank 0, which returns it)."""
    if tuple(getattr(model, "data_range", (-1.0, 1.0))) != (-1.0, 1.0):
        raise ConfigError("bits/dim needs a model of [-1, 1] data; this network works on "
                          f"{tuple(model.data_range)} (an original-reproduction file)")
    get, total, split = test_images(cfg.data)
    n, s = min(num_images, total), cfg.sample
    meta = {"pretrained_path": os.path.abspath(pretrained_path),
            "pretrained_bytes": os.path.getsize(pretrained_path), "split": split,
            "timesteps": diffusion.num_timesteps, "var_type": diffusion.var_type.value,
            "clip_denoised": s.clip_denoised, "seed": s.seed}
    base = os.path.join(s.sample_dir, f"{s.sample_postfix}_bpd")
    say(f"bits/dim of {n} images of {split} under {pretrained_path} (T = {diffusion.num_timesteps})")
    per_image = bpd_resumable(diffusion, model, get, n, s.batchsize or cfg.train.batchsize,
                              s.seed, base + ".partial", meta, s.clip_denoised, progress)
    if per_image is None:
        return None
    result = summary(per_image, dict(meta, checkpoint=pretrained_path,
                                     checkpoint_iteration=iteration))
    out = out_path or os.path.join(s.sample_dir, f"bpd_{s.sample_postfix}_{n}.json")
    write_summary(out, result)
    shutil.rmtree(base + ".partial", ignore_errors=True)
    say(f"NLL <= {result['bpd']:.4f} bits/dim (± {result['bpd_stderr'] or 0:.4f}; prior "
        f"{result['prior_bpd']:.4f}, decoder {result['decoder_bpd']:.4f}; {n} images of {split})")
    say(f"wrote {out}")
    return result
