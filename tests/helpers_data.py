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

make_fake_mnist(root, n_train=16, n_test=8, seed=0)
    Writes ``{root}/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``: real idx headers
    (00 00 08 03 / 00 00 08 01, big-endian sizes), gzip-compressed. Images are digit-like
    blobs (uint8 [N, 28, 28]), labels 0..9. Returns dict: images, labels, test_images,
    test_labels, md5 (file name -> MD5). Use it as --data_dir root (mnist / fashion_mnist).

make_fake_celeba(root, n=6, zip_name="img_align_celeba.zip", seed=0)
    Writes the official zip layout ``img_align_celeba/000001.jpg...`` of 178x218 RGB JPEGs
    (a smooth pattern that encodes the pixel position). Returns dict: path, names.
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


def idx_bytes(arr: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array (LeCun's format)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.tobytes()


def make_fake_mnist(root: str, n_train: int = 16, n_test: int = 8, seed: int = 0) -> dict:
    import gzip
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    out, md5 = {}, {}
    yy, xx = np.mgrid[0:28, 0:28]
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        cy, cx = rng.uniform(9, 19, (2, n, 1, 1))
        images = np.clip(300 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0), 0, 255)
        images = images.astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            with gzip.open(os.path.join(root, name), "wb") as fh:
                fh.write(idx_bytes(arr))
            with open(os.path.join(root, name), "rb") as fh:
                md5[name] = hashlib.md5(fh.read()).hexdigest()
        key = "" if prefix == "train" else "test_"
        out[key + "images"], out[key + "labels"] = images, labels.astype(np.int64)
    out["md5"] = md5
    return out


def celeba_pattern(seed: int = 0) -> np.ndarray:
    """uint8 [218, 178, 3]: R encodes the column, G the row, B a seed-dependent constant."""
    yy, xx = np.mgrid[0:218, 0:178]
    return np.stack([xx * 255 // 177, yy * 255 // 217, np.full_like(xx, 40 * seed % 256)],
                    -1).astype(np.uint8)


def make_fake_celeba(root: str, n: int = 6, zip_name: str = "img_align_celeba.zip",
                     seed: int = 0) -> dict:
    import zipfile
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, zip_name)
    names = [f"img_align_celeba/{i:06d}.jpg" for i in range(1, n + 1)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("img_align_celeba/", b"")
        for k, name in enumerate(names):
            buf = io.BytesIO()
            Image.fromarray(celeba_pattern(seed + k)).save(buf, format="JPEG", quality=95)
            zf.writestr(name, buf.getvalue())
    return {"path": path, "names": names}
