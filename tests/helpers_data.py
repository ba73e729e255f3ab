"""Tiny data sets in the REAL on-disk formats, for tests (also the lead's end-to-end tests).

make_fake_cifar10(root, n_per_batch=4, seed=0, extracted=False)
    Writes ``{root}/cifar-10-python.tar.gz`` laid out like the official archive
    (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``).
    Each batch is a Python-2-style protocol-2 pickle of a dict with byte-string keys
    b"batch_label", b"labels", b"data" (uint8 [n_per_batch, 3072]), b"filenames",
    readable with encoding="latin1" (str keys) or "bytes" (bytes keys), like the
    real files. With ``extracted=True`` the folder is written instead of the tar.
    Returns a dict: path (tar or folder), md5 (of the tar), train_data uint8
    [5n, 3, 32, 32], train_labels int64 [5n], test_data, test_labels.
    Use it as --data_dir root (data.dataset=cifar10); 5*n_per_batch train images.

make_fake_image_tree(root, size=(40, 48))
    Writes the original CelebA-HQ layout ``{root}/{train,val}/{male,female}/``
    with RGB JPEGs, a greyscale (mode L) JPEG, an RGBA PNG, a WebP and one corrupt
    ``.jpg`` (random bytes). Returns dict: root, good (sorted relative paths of the
    readable images), bad (the corrupt file's relative path).
    Use it as --data_dir root (data.dataset=folder or celeba_hq).

write_png_with_bad_pixel_data(path)
    A PNG whose chunk CRCs are right (PIL's verify() passes) but whose pixel data is not
    a zlib stream: it fails only when decoded.

write_truncated_jpeg(path, seed=0)
    A 64x64 JPEG cut at 3/5 of its length: the headers are whole, the scan is not.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tarfile
import zlib

import numpy as np
from PIL import Image


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes and numpy's reconstructor under its
    Python 2 / numpy 1 name, as in the official CIFAR-10 pickles."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", "") == "_reconstruct" and \
                "multiarray" in getattr(obj, "__module__", ""):
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _batch(label: str, data: np.ndarray, labels: np.ndarray) -> bytes:
    return py2_pickle({
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": np.ascontiguousarray(data.reshape(len(data), 3072), dtype=np.uint8),
        b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(data))],
    })


def make_fake_cifar10(root: str, n_per_batch: int = 4, seed: int = 0,
                      extracted: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    files, train, train_y = {}, [], []
    for b in range(1, 6):
        data = rng.integers(0, 256, (n_per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, n_per_batch).astype(np.int64)
        files[f"data_batch_{b}"] = _batch(f"training batch {b} of 5", data, labels)
        train.append(data)
        train_y.append(labels)
    test = rng.integers(0, 256, (n_per_batch, 3, 32, 32), dtype=np.uint8)
    test_y = rng.integers(0, 10, n_per_batch).astype(np.int64)
    files["test_batch"] = _batch("testing batch 1 of 1", test, test_y)
    files["batches.meta"] = py2_pickle({b"label_names": [b"airplane", b"automobile", b"bird",
                                                         b"cat", b"deer", b"dog", b"frog",
                                                         b"horse", b"ship", b"truck"],
                                        b"num_cases_per_batch": n_per_batch, b"num_vis": 3072})
    out = {"train_data": np.concatenate(train), "train_labels": np.concatenate(train_y),
           "test_data": test, "test_labels": test_y, "md5": None}
    if extracted:
        folder = os.path.join(root, "cifar-10-batches-py")
        os.makedirs(folder, exist_ok=True)
        for name, raw in files.items():
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(raw)
        out["path"] = folder
        return out
    path = os.path.join(root, "cifar-10-python.tar.gz")
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("cifar-10-batches-py")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tf.addfile(info)
        for name, raw in sorted(files.items()):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    with open(path, "rb") as fh:
        out["md5"] = hashlib.md5(fh.read()).hexdigest()
    out["path"] = path
    return out


def _smooth_rgb(h: int, w: int, phase: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    r = (xx * 255 // max(w - 1, 1) + phase * 40) % 256
    g = (yy * 255 // max(h - 1, 1) + phase * 70) % 256
    b = ((xx + yy) * 4 + phase * 90) % 256
    return np.stack([r, g, b], -1).astype(np.uint8)


def make_fake_image_tree(root: str, size=(40, 48)) -> dict:
    """``size`` is (height, width) of most images; some differ to exercise the crop."""
    h, w = size
    plan = {
        "train/male/000.jpg": ("RGB", (h, w)),
        "train/male/001.jpg": ("L", (w, h)),             # greyscale, portrait
        "train/male/002.png": ("RGBA", (h, h)),          # RGBA PNG
        "train/female/000.jpg": ("RGB", (h + 8, w)),
        "train/female/001.webp": ("RGB", (h, w)),
        "val/male/000.jpg": ("RGB", (h, w)),
        "val/female/000.jpg": ("RGB", (h, w + 16)),
    }
    for k, (rel, (mode, (hh, ww))) in enumerate(sorted(plan.items())):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rgb = _smooth_rgb(hh, ww, k)
        if mode == "L":
            img = Image.fromarray(rgb[..., 1], mode="L")
        elif mode == "RGBA":
            alpha = np.full((hh, ww, 1), 255, np.uint8)
            alpha[: hh // 4] = 128                          # partly transparent top band
            img = Image.fromarray(np.concatenate([rgb, alpha], -1), mode="RGBA")
        else:
            img = Image.fromarray(rgb, mode="RGB")
        img.save(path, quality=95) if rel.endswith(".jpg") else img.save(path)
    bad = "train/female/002.jpg"
    with open(os.path.join(root, bad), "wb") as fh:
        fh.write(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return {"root": root, "good": sorted(plan), "bad": bad}


def write_png_with_bad_pixel_data(path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(buf, format="PNG")
    raw, out, pos = buf.getvalue(), bytearray(buf.getvalue()[:8]), 8
    while pos < len(raw):
        n = struct.unpack(">I", raw[pos:pos + 4])[0]
        kind, data = raw[pos + 4:pos + 8], raw[pos + 8:pos + 8 + n]
        if kind == b"IDAT":
            data = bytes(len(data))                      # zeros: not a zlib stream
        out += struct.pack(">I", len(data)) + kind + data
        out += struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        pos += 12 + n
    with open(path, "wb") as fh:
        fh.write(bytes(out))


def write_truncated_jpeg(path, seed: int = 0) -> None:
    noise = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG", quality=95)
    raw = buf.getvalue()
    with open(path, "wb") as fh:
        fh.write(raw[: len(raw) * 3 // 5])
