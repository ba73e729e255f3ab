"""What a path given as a weights file really is, when it is not one: an image, a text
file, a diffusers folder. Read off the first bytes (the formats' magic numbers), so a
wrong path gets a message that names what it is instead of an unpickling error."""
from __future__ import annotations

import os
from typing import Optional

# leading bytes -> what the file is
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive (a data set?)"),
)
DIFFUSERS_MARKERS = ("config.json", os.path.join("unet", "config.json"), "model_index.json")


def is_diffusers_folder(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m))
                                       for m in DIFFUSERS_MARKERS)


def foreign_file_kind(path: str) -> Optional[str]:
    """'a PNG image', 'a text file' ... for a file that is surely not a weights file; None
    when the first bytes do not tell."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "a text file"
    return None


def not_weights_reason(path: str) -> Optional[str]:
    """Why ``path`` cannot be a weights file, with what to do, or None."""
    if is_diffusers_folder(path):
        return (f"{path!r} is a diffusers model folder; convert it to a ppddpm file first: "
                f"python -m ppddpm.convert --from diffusers --src {path} --out model.pdparam")
    if os.path.isdir(path):
        return f"{path!r} is a folder, not a weights file; give the file inside it"
    kind = foreign_file_kind(path)
    if kind is not None:
        return (f"{path!r} is {kind}, not a weights file (a .pdparam, .pdparams or "
                ".safetensors file that ppddpm or the original reproduction wrote)")
    return None
