"""Download one file with an MD5 check: temp file beside the target, checked, then renamed.

Nothing half-downloaded or corrupt is ever left under the final name. Failures are
one ``DatasetError`` naming the URL and, through ``where_to_put``, the file the user
can fetch by hand and the place to put it.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request

from ..errors import DatasetError
from ..io.files import commit_temp, file_hash, temp_path_for
from ..runtime.progress import progress as progress_display


def file_md5(path: str) -> str:
    return file_hash(path, "md5")


def download_file(url: str, target: str, md5: str, what: str, where_to_put: str,
                  timeout: float = 30.0) -> str:
    """Fetch ``url`` to ``target`` (progress bar), require MD5 ``md5``; return ``target``.

    ``what`` names the file in messages ("MNIST train-images-idx3-ubyte.gz");
    ``where_to_put`` is the sentence that tells the user how to get it by hand.
    ``timeout``: seconds without data before giving up.
    """
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    tmp = temp_path_for(target)
    digest = hashlib.md5()
    done = False
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress_display(total=total, unit="B", desc=f"{what} download",
                                  unit_scale=True) as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    fh.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DatasetError(f"the {what} download from {url} has MD5 {digest.hexdigest()}, "
                               f"expected {md5} (corrupt or incomplete download); nothing was "
                               f"kept. Retry, or: {where_to_put}")
        commit_temp(tmp, target)
        done = True
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DatasetError(f"{what} is not at {os.path.abspath(target)} and downloading it "
                           f"from {url} failed ({exc}). {where_to_put}") from None
    finally:
        if not done and os.path.exists(tmp):
            os.remove(tmp)
    return target
