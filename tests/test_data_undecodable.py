"""Images that only fail when decoded: skipped and counted, never a hang, never a traceback.

Before: a JPEG cut in half passed PIL's verify(); when its item failed to load, the
exception killed Paddle's loader thread and the main process waited forever with
num_workers 0 (a SystemError after a thread traceback with workers). Every run here
is a subprocess with a timeout, so a hang fails the test instead of stalling the suite."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers_cli import ROOT, run
from helpers_data import write_png_with_bad_pixel_data, write_truncated_jpeg

LOAD_ALL = """
import os, sys, warnings
import numpy as np
MAIN = os.getpid()
from ppddpm.data import build_loader
from ppddpm.data.folders import ImageFolderDataset
from ppddpm.errors import DatasetError
warnings.simplefilter("ignore")
for folder in sys.argv[1:3]:
    ds = ImageFolderDataset(folder, 8)
    for workers in (0, 2):
        print("items", len(ds), "skipped", len(ds.skipped), "workers", workers)
        try:
            for epoch in range(2):
                print("batches", sum(1 for _ in build_loader(ds, 2, num_workers=workers)))
        except DatasetError as exc:
            print("error:", exc)


class DiesInWorkers:  # a worker process that dies (as when the system kills it)
    def __len__(self):
        return 8

    def __getitem__(self, key):
        if os.getpid() != MAIN:
            os._exit(3)
        return np.zeros((1, 2, 2), np.float32), np.int64(0)


try:
    for batch in build_loader(DiesInWorkers(), 2, num_workers=2):
        print("batch")
except DatasetError as exc:
    print("error:", exc)

# The workers get their first indices before the loader's thread starts; if they die first,
# Paddle's SIGCHLD handler raises inside iter() (seen once in CI). Delay the thread to make
# that order certain.
import time
from paddle.io.dataloader import dataloader_iter
start_thread = dataloader_iter._DataLoaderIterMultiProcess._init_thread
def late_start(self):
    time.sleep(3)
    start_thread(self)
dataloader_iter._DataLoaderIterMultiProcess._init_thread = late_start
try:
    for batch in build_loader(DiesInWorkers(), 2, num_workers=2):
        print("batch")
except DatasetError as exc:
    print("error:", exc)
"""

TINY = """\
base: {root}/configs/celeba_hq.yaml
data: {{image_size: 8, num_workers: 2}}
model: {{arch: unet, ch: 8, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], resolution: 8, norm_groups: 4}}
diffusion: {{num_diffusion_steps: 10}}
train: {{batchsize: 2, training_iters: 2, warmup_steps: 1, sample_interval: 0, ckpt_interval: 2}}
"""


def _load_all(*folders):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", LOAD_ALL, *map(str, folders)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("undecodable")
    (d / "cut").mkdir()
    write_truncated_jpeg(d / "cut" / "a.jpg")
    for k in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(d / "cut" / f"b{k}.png")
    (d / "bad").mkdir()
    for k in range(3):
        write_png_with_bad_pixel_data(d / "bad" / f"{k}.png")
    (d / "tiny.yaml").write_text(TINY.format(root=ROOT))
    return d


def test_cut_jpeg_is_skipped_loading_never_hangs_and_dead_workers_are_one_line(folders):
    out = _load_all(folders / "cut", folders / "bad")   # "bad": every item fails when decoded
    for workers, k in ((0, 0), (2, 3)):
        assert out[k:k + 3] == [f"items 4 skipped 1 workers {workers}", "batches 2", "batches 2"]
    for workers, k in ((0, 6), (2, 8)):
        assert out[k] == f"items 3 skipped 0 workers {workers}"
        assert out[k + 1].startswith("error: loading item ") and "none of the images in" in out[k + 1]
    assert out[10].startswith("error: the data loader failed")
    assert out[11].startswith("error: the data loader failed") and len(out) == 12


def test_cli_a_failing_loader_worker_is_one_line(folders):
    proc = run("run_celeba_hq.py", "--config", "tiny.yaml", "--data_dir", "bad", cwd=folders,
               expect=2)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "none of the images in" in errors[0]
    assert "Traceback" not in proc.stderr and "SystemError" not in proc.stderr
