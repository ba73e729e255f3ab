"""The web page's library side, in-process (no server, no browser): the listing of --models
(what each file's stored config says, nothing outside DIR, no code run from a file), the
checks of a job's form, the queue (one at a time, places, stop, a failed job), and the
images a job draws: the same as --mode denoise's for the same seed."""
import os
import pickle
import threading
import time

import numpy as np
import paddle
import pytest
from PIL import Image

from ppddpm.config import Config, ConfigError, ModelConfig, validate
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.models import build_model
from ppddpm.samplers import checked_sampler, generate
from ppddpm.edit.img2img import img2img
from ppddpm.io.images import to_uint8
from ppddpm.web.catalog import Catalog, ModelRefused
from ppddpm.web.img2img_job import plan_img2img, run_img2img
from ppddpm.web.jobs import Job, JobQueue
from ppddpm.web.sample_job import plan_sample, run_sample
from ppddpm.web.uploads import UploadError, read_image
from ppddpm.web.warm import WarmModel


def tiny_config(num_classes=None, steps=40, resolution=8, channels=3, class_names=None):
    cfg = Config()
    cfg.model = ModelConfig(arch="unet", ch=8, ch_mult=[1, 2], num_res_blocks=1,
                            attn_resolutions=[], dropout=0.0, resolution=resolution,
                            num_classes=num_classes, norm_groups=4, in_channels=channels,
                            out_channels=channels)
    cfg.diffusion.num_diffusion_steps = steps
    cfg.diffusion.beta_end = 0.2 * 40 / steps   # alpha-bar_T near 0 at any T
    cfg.data.dataset, cfg.data.image_size, cfg.data.channels = "folder", resolution, channels
    cfg.data.class_names = class_names
    validate(cfg)
    return cfg


def write_tiny_model(path, seed=0, **kw):
    """A random-weights inference file of a tiny UNet; returns (path, its parameter count)."""
    cfg = tiny_config(**kw)
    paddle.seed(seed)
    net = build_model(cfg.model)
    save_inference_file(str(path), net.state_dict(),
                        GaussianDiffusion.from_config(cfg.diffusion).betas, {}, cfg)
    return str(path), sum(int(p.numel()) for p in net.parameters())


class RunsCode:
    """A pickle that would run a shell command when unpickled by plain pickle."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    d = root / "models"
    (d / "sub").mkdir(parents=True)
    files = {"uncond": write_tiny_model(d / "uncond.pdparam"),
             "cond": write_tiny_model(d / "sub" / "cond.safetensors", num_classes=3,
                                      class_names=["cat", "dog", "owl"], seed=1)}
    write_tiny_model(root / "outside.pdparam")
    os.symlink(root / "outside.pdparam", d / "link_out.pdparam")
    (d / "notes.pdparam").write_text("not weights\n")
    with open(d / "evil.pdparam", "wb") as fh:
        pickle.dump({"model": RunsCode(root / "ran")}, fh)
    (d / "readme.txt").write_text("ignored: not a weights file name\n")
    return {"dir": str(d), "root": root, **files}


def test_listing_reads_each_files_stored_config(models):
    by_name = {e.name: e for e in Catalog(models["dir"]).entries()}
    assert sorted(by_name) == ["evil.pdparam", "notes.pdparam", "sub/cond.safetensors",
                               "uncond.pdparam"]   # link_out leads out of DIR: not listed
    cond, uncond = by_name["sub/cond.safetensors"], by_name["uncond.pdparam"]
    assert (cond.arch, cond.dataset, cond.shape, cond.num_classes, cond.class_names) == \
        ("unet", "folder", (3, 8, 8), 3, ["cat", "dog", "owl"])
    assert cond.params == models["cond"][1] and uncond.params == models["uncond"][1]
    assert uncond.num_classes is None and uncond.timesteps == 40 and uncond.problem is None
    assert "text file" in by_name["notes.pdparam"].problem
    assert "refused to load" in by_name["evil.pdparam"].problem
    assert not (models["root"] / "ran").exists()   # the allow-list loader ran nothing


@pytest.mark.parametrize("name", ["../outside.pdparam", "link_out.pdparam", None, 3,
                                  "sub/../../outside.pdparam", "notes.pdparam", "evil.pdparam"])
def test_only_listed_readable_files_can_be_chosen(models, name):
    catalog = Catalog(models["dir"])
    with pytest.raises(ModelRefused):
        catalog.resolve(name)


def test_an_absolute_path_is_refused_and_a_listed_name_accepted(models):
    catalog = Catalog(models["dir"])
    with pytest.raises(ModelRefused, match="not one of the weights files"):
        catalog.resolve(models["uncond"][0])
    assert catalog.resolve("uncond.pdparam").path == os.path.realpath(models["uncond"][0])


def test_form_checks_name_the_bad_value(models):
    catalog = Catalog(models["dir"])
    uncond, cond = catalog.resolve("uncond.pdparam"), catalog.resolve("sub/cond.safetensors")
    cases = [({"sampler": "ddim", "steps": 0}, "steps must be between 1"),
             ({"sampler": "ddim", "steps": 41}, "do not fit the 40-step diffusion"),
             ({"sampler": "plms"}, "sampler 'plms' is not known"),
             ({"sampler": "ddim", "num_images": 17}, "number of images must be between 1 and 16"),
             ({"sampler": "ddim", "eta": "x"}, "eta 'x' is not a number"),
             ({"sampler": "ddim", "class_label": "1"}, "needs a class-conditional model")]
    for form, message in cases:
        with pytest.raises(ConfigError, match=message):
            plan_sample(form, uncond)
    with pytest.raises(ConfigError, match="'bat' is not a class"):
        plan_sample({"class_label": "bat"}, cond)
    plan = plan_sample({"sampler": "ddpm", "steps": 10, "num_images": 5,
                        "class_label": "all", "guidance_scale": 2}, cond)
    assert (plan.sample.respacing, plan.rows, plan.cols) == ("10", 2, 3)
    assert plan.labels.tolist() == [0, 1, 2, 0, 1]


def test_a_job_draws_what_denoise_draws_and_writes_only_its_folder(models, tmp_path):
    """The page's images for a seed are generate()'s (the path --mode denoise takes)."""
    entry = Catalog(models["dir"]).resolve("sub/cond.safetensors")
    plan = plan_sample({"sampler": "ddim", "steps": 8, "eta": 0.5, "seed": 3, "num_images": 4,
                        "class_label": "2", "guidance_scale": 1.5}, entry)
    job, warm = Job("sample", plan, str(tmp_path / "out")), WarmModel("dygraph")
    st = os.stat(entry.path)
    loaded = warm.get(entry, (st.st_size, st.st_mtime_ns))
    run_sample(job, loaded)
    assert warm.get(entry, (st.st_size, st.st_mtime_ns)) is loaded and warm.loads == 1
    expected = generate(loaded.model, checked_sampler(loaded.diffusion, plan.sample), 4,
                        [3, 8, 8], 4, seed=3, progress=False, labels=[2, 2, 2, 2],
                        guidance_scale=1.5)
    images = np.load(job.files["npz"])["arr_0"]
    assert np.array_equal(images, expected)
    assert Image.open(job.files["grid"]).size == (2 * 10 + 2, 2 * 10 + 2)
    gif = Image.open(job.files["gif"])
    assert gif.n_frames >= 2 and job.frame_count == 8
    assert (job.steps_done, job.steps_total) == (8, 8)
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert sorted(os.listdir(tmp_path / "out")) == [job.id]


def test_an_img2img_job_is_sdedit_of_the_upload(models, tmp_path):
    """The page's image-to-image job gives --mode img2img's images (edit.img2img) for the same
    seed, strength and class; strength 0 gives the upload back; its checks name the value."""
    entry = Catalog(models["dir"]).resolve("sub/cond.safetensors")
    upload = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8)).astype(np.float32)
    form = {"sampler": "ddim", "steps": 10, "seed": 3, "num_images": 4, "class_label": "1",
            "guidance_scale": 1.0, "strength": 0.6}
    plan = plan_img2img(form, entry, upload)
    job, warm = Job("img2img", plan, str(tmp_path / "out")), WarmModel("dygraph")
    st = os.stat(entry.path)
    loaded = warm.get(entry, (st.st_size, st.st_mtime_ns))
    run_img2img(job, loaded)
    sampler = checked_sampler(loaded.diffusion, plan.base.sample)
    expected = img2img(loaded.model, sampler, np.repeat(upload[None], 4, axis=0), 0.6, seed=3,
                       y=[1, 1, 1, 1], guidance_scale=1.0)
    images = np.load(job.files["npz"])["arr_0"]
    assert np.array_equal(images, to_uint8(expected))
    assert 0 < job.steps_total < 10 and job.steps_done == job.steps_total   # t < 0.6 T only
    kept = Job("img2img", plan_img2img(dict(form, strength=0), entry, upload),
               str(tmp_path / "out"))
    run_img2img(kept, loaded)
    assert np.array_equal(np.load(kept.files["npz"])["arr_0"][0], to_uint8(upload))
    for bad, words in [(dict(form, strength=1.5), "strength must be between 0.0 and 1.0"),
                       (dict(form, strength="x"), "strength 'x' is not a number")]:
        with pytest.raises(ConfigError, match=words):
            plan_img2img(bad, entry, upload)
    with pytest.raises(ConfigError, match="needs an uploaded start image"):
        plan_img2img(form, entry, None)


def wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_queue_one_at_a_time_places_stop_and_a_failed_job(tmp_path):
    release, running, order = threading.Event(), [], []

    def run(job):
        running.append(job.id)
        assert len(running) - len(order) == 1, "two jobs ran at once"
        if job.plan == "fail":
            order.append(job.id)
            raise RuntimeError("broken engine")
        for i in range(1, 1000):
            job.step(i, 999)
            if job.stopped or (job.plan == "quick" and i == 3):
                break
            release.wait(0.01)
        order.append(job.id)

    queue = JobQueue(run)
    long_job = queue.submit(Job("sample", "long", str(tmp_path)))
    failing = queue.submit(Job("sample", "fail", str(tmp_path)))
    quick = queue.submit(Job("sample", "quick", str(tmp_path)))
    dropped = queue.submit(Job("sample", "quick", str(tmp_path)))
    wait_for(lambda: long_job.state == "running" and long_job.steps_done > 2)
    assert [queue.position(j) for j in (long_job, failing, quick, dropped)] == [0, 2, 3, 4]
    queue.stop(dropped)                       # waiting: leaves the queue at once
    assert dropped.state == "stopped" and queue.position(quick) == 3
    queue.stop(long_job)                      # running: ends at its next step
    wait_for(lambda: quick.finished)
    assert long_job.state == "stopped" and "nothing was written" in long_job.message
    assert failing.state == "failed" and "RuntimeError: broken engine" in failing.message
    assert quick.state == "done"              # the queue went on after the failure
    assert order == [long_job.id, failing.id, quick.id]
    queue.close()


def test_uploads_must_be_images_of_the_models_size(models, tmp_path):
    entry = Catalog(models["dir"]).resolve("uncond.pdparam")

    def png(w, h, mode="RGB"):
        path = tmp_path / f"{w}x{h}.png"
        Image.new(mode, (w, h), 200).save(path)
        return path.read_bytes()
    with pytest.raises(UploadError, match="photo.png is 16x12, but uncond.pdparam makes 8x8"):
        read_image(png(16, 12), "photo.png", entry)
    with pytest.raises(UploadError, match="notes.txt is not an image"):
        read_image(b"hello\n", "notes.txt", entry)
    with pytest.raises(UploadError, match="is empty"):
        read_image(b"", "x.png", entry)
    image = read_image(png(8, 8, "L"), "grey.png", entry)   # grey to the model's RGB
    assert image.shape == (3, 8, 8) and np.allclose(image, 200 / 127.5 - 1)


def test_the_time_left_is_the_rate_since_the_first_step(monkeypatch, tmp_path):
    """Loading and the first step's warm-up do not count: (now - first) / (done - 1) per step."""
    from ppddpm.web import jobs
    now = [100.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: now[0])
    job = Job("sample", None, str(tmp_path))
    job.state = "running"
    job.step(1, 10)              # t = 100
    job.step(4, 10)
    now[0] = 112.0
    assert job.seconds_left() == 12.0 / 3 * 6
