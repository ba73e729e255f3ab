"""The FID Inception v3 in Paddle: TF's 2015-12-05 Inception as pytorch-fid ports it.

It is torchvision's Inception3 (1008-class fc, no aux head, no input transform) with the
blocks pytorch-fid patches to match TensorFlow:
  * FIDInceptionA / FIDInceptionC / FIDInceptionE_1: the 3x3 average pool of the pool
    branch ignores the zero padding (count_include_pad=False; Paddle: exclusive=True);
  * FIDInceptionE_2 (Mixed_7c): the pool branch uses a 3x3 *max* pool.
Sub-layer names equal torchvision's, so a pytorch-fid state dict maps key for key
(BatchNorm running_mean/var -> _mean/_variance, fc.weight transposed).

Input handling follows pytorch-fid exactly (fid_score.py + InceptionV3.forward):
uint8 image -> float32 / 255 (ToTensor) -> bilinear resize to 299x299 with
align_corners=False and no antialiasing (F.interpolate) -> 2x - 1.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...errors import CheckpointError
from ...io.files import file_hash
from ...io.safeload import UnsafeFileError, load_paddle_file
from ...io.weights import atomic_save
from .inception_weights import InceptionWeightsError, how_to_get_weights
from ...io.pth_reader import read_pth

INPUT_SIZE = 299
NUM_CLASSES = 1008   # TF Inception's softmax has 1008 outputs (1000 classes + 8 unused)
FEATURE_DIM = 2048


class BasicConv2d(nn.Layer):
    """conv (no bias) -> BatchNorm (eps 0.001, as TF) -> ReLU."""

    def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, kernel_size, stride=stride, padding=padding, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout, epsilon=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg3(x):
    # TF's average pool does not count the zero padding (pytorch-fid's patch).
    return F.avg_pool2d(x, 3, stride=1, padding=1, exclusive=True)


class FIDInceptionA(nn.Layer):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return paddle.concat([self.branch1x1(x), b5, b3, self.branch_pool(_avg3(x))], axis=1)


class InceptionB(nn.Layer):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return paddle.concat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], axis=1)


class FIDInceptionC(nn.Layer):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return paddle.concat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], axis=1)


class InceptionD(nn.Layer):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return paddle.concat([b3, b7, F.max_pool2d(x, 3, stride=2)], axis=1)


class FIDInceptionE(nn.Layer):
    """Mixed_7b (pool='avg', pytorch-fid's FIDInceptionE_1) and Mixed_7c (pool='max', E_2)."""

    def __init__(self, cin, pool):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = paddle.concat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], axis=1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = paddle.concat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], axis=1)
        # E_2: max pool -- most likely a bug in the TF graph, kept for comparable FIDs.
        pooled = _avg3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return paddle.concat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], axis=1)


class FIDInceptionV3(nn.Layer):
    """forward(uint8-valued or [0,1] images) -> (pool3 [N, 2048], logits [N, 1008]).

    ``logits`` include the fc bias; ``logits_unbiased(pool3)`` omits it, as the original
    Inception Score code (and torch-fidelity) does.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, "avg")
        self.Mixed_7c = FIDInceptionE(2048, "max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    @staticmethod
    def preprocess(x: paddle.Tensor) -> paddle.Tensor:
        """float [0,1] NCHW of any size -> [-1,1] at 299x299, exactly as pytorch-fid."""
        # pytorch-fid resizes even 299x299 inputs (an identity then).
        x = F.interpolate(x, size=[INPUT_SIZE, INPUT_SIZE], mode="bilinear",
                          align_corners=False, align_mode=0)
        return 2 * x - 1

    def pool3(self, x: paddle.Tensor) -> paddle.Tensor:
        """[-1,1] 299x299 images -> the 2048-d pool3 features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def logits_unbiased(self, pool3: paddle.Tensor) -> paddle.Tensor:
        return paddle.matmul(pool3, self.fc.weight)

    def forward(self, images01: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        feats = self.pool3(self.preprocess(images01))
        return feats, self.fc(feats)


# -- weights -------------------------------------------------------------------
def paddle_key(torch_key: str) -> str:
    return torch_key.replace(".running_mean", "._mean").replace(".running_var", "._variance")


def torch_keys_and_shapes(model: FIDInceptionV3):
    """The model's parameters under pytorch-fid's names and shapes."""
    out = []
    for key, value in model.state_dict().items():
        tkey = key.replace("._mean", ".running_mean").replace("._variance", ".running_var")
        shape = list(value.shape)
        out.append((tkey, tuple(shape[::-1]) if tkey == "fc.weight" else tuple(shape)))
    return out


def load_torch_state(model: FIDInceptionV3, state: Mapping[str, np.ndarray], source: str) -> None:
    """Load a pytorch-fid state dict (numpy arrays) strictly: every key, every shape."""
    own = model.state_dict()
    converted: Dict[str, np.ndarray] = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue  # a training counter, not a weight
        value = np.asarray(value, dtype=np.float32)
        converted[paddle_key(key)] = value.T if key == "fc.weight" else value
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    bad = [f"{k}: file {list(converted[k].shape)} vs model {list(own[k].shape)}"
           for k in own if k in converted and list(converted[k].shape) != list(own[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(
            f"{source} is not pytorch-fid's FID Inception state dict: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]}), {len(bad)} mis-shaped (e.g. {bad[:3]}). "
            + how_to_get_weights())
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in converted.items()})


def file_digest(path: str) -> str:
    """SHA-256 of a file (identifies the Inception weights that made a set of statistics)."""
    return file_hash(path, "sha256")


def cache_path_for(pth_path: str) -> str:
    """The .pdparams cache of a .pth: beside it when that folder is writable, else
    under ~/.cache/ppddpm/."""
    base = os.path.splitext(os.path.basename(pth_path))[0] + ".pdparams"
    folder = os.path.dirname(os.path.abspath(pth_path))
    if not os.access(folder, os.W_OK):
        folder = os.path.join(os.path.expanduser("~"), ".cache", "ppddpm")
    return os.path.join(folder, base)


def _read_cache(path: str):
    """(state, source digest) of a ppddpm Inception cache, or None if it is not one.

    Read through the allow-list unpickler: a cache whose pickle asks for code raises
    UnsafeFileError instead of being run (or silently rebuilt)."""
    try:
        obj = load_paddle_file(path, return_numpy=True)
    except UnsafeFileError:
        raise
    except Exception:  # truncated or foreign file: unpickling raises many types
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("state"), dict) or "source_sha256" not in obj:
        return None
    return obj["state"], str(obj["source_sha256"])


def load_inception(path: str, cache: bool = True) -> Tuple[FIDInceptionV3, str]:
    """Build the FID Inception from ``path`` (a pytorch-fid .pth or its .pdparams cache).

    A .pth is read without PyTorch and, with ``cache``, converted once to a .pdparams file
    holding the weights and the .pth's SHA-256 (rebuilt when the .pth changes or the cache
    is unreadable). Returns (model in eval mode, weights id = SHA-256 of the .pth).
    """
    if not os.path.isfile(path):
        raise InceptionWeightsError(f"Inception weights file {path} does not exist: "
                                    + how_to_get_weights())
    if path.endswith(".pdparams"):
        found = _read_cache(path)
        if found is None:
            raise CheckpointError(f"{path} is not a ppddpm Inception cache; pass the .pth "
                                  f"instead ({how_to_get_weights()})")
        state, digest = found
    else:
        digest = file_digest(path)
        cached = cache_path_for(path)
        found = _read_cache(cached) if cache and os.path.isfile(cached) else None
        if found is not None and found[1] == digest:
            state = found[0]
        else:
            model = FIDInceptionV3()
            load_torch_state(model, read_pth(path), path)
            state = None
            if cache:
                atomic_save({"state": {k: v.numpy() for k, v in model.state_dict().items()},
                             "source_sha256": digest}, cached)
    if state is not None:   # built after the cache is read: a refused file fails fast
        model = FIDInceptionV3()
        load_torch_state_paddle(model, state, path)
    model.eval()
    return model, digest


def load_torch_state_paddle(model: FIDInceptionV3, state: Mapping[str, np.ndarray], source: str) -> None:
    """Load a state in Paddle's own names and layout (a cache), checking keys and shapes."""
    own = model.state_dict()
    if set(state) != set(own) or any(list(np.shape(state[k])) != list(own[k].shape) for k in own):
        raise CheckpointError(f"{source}: the cached Inception weights do not fit the network; "
                              "delete the .pdparams cache and pass the .pth again")
    model.set_state_dict({k: paddle.to_tensor(np.asarray(v, np.float32)) for k, v in state.items()})
