"""--mode fid_stats and --mode eval through the shared CLI (in-process, to keep it fast):
a tiny DDPM, a fake CIFAR-10 in the real format, and random FID-Inception weights."""
import contextlib
import io
import json
import os

import numpy as np
import paddle
import pytest

from helpers_cli import ROOT
from helpers_data import make_fake_cifar10
from helpers_inception import engine_cache, random_weights_pth
from ppddpm.engines.cache import CACHE_ENV
from ppddpm.cli import main
from ppddpm.config import load_config
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.evaluate import checkpoint_iteration, compute_metrics
from ppddpm.evaluate.resumable import missing_ranges
from ppddpm.evaluate.metrics.features import from_array, from_folder, inception_features, open_samples
from ppddpm.evaluate.metrics.fid import feature_statistics
from ppddpm.evaluate.metrics.inception import file_digest, load_inception
from ppddpm.evaluate.metrics.inception_weights import ENV_VAR, WEIGHTS_FILE, WEIGHTS_URL
from ppddpm.evaluate.metrics.kid import kernel_inception_distance
from ppddpm.evaluate.metrics.precision_recall import precision_recall
from ppddpm.evaluate.metrics.stats import ReferenceStats, load_stats
from ppddpm.models import build_model
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.samplers import build_sampler, generate

TINY = """\
base: {root}/configs/cifar10.yaml
model: {{ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [16], dropout: 0.0}}
diffusion: {{num_diffusion_steps: 10, beta_end: 0.2}}
data: {{num_workers: 0, download: false}}
sample: {{batchsize: 4}}
"""
CKPT = "ddpm_cifar10_i123_ema.pdparams"
N = 10


def cli(*argv):
    return main("tiny.yaml", "test", argv=list(argv) + ["--quiet"])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    data = make_fake_cifar10(str(d / "ds"), 2)                     # 10 training images
    (d / "tiny.yaml").write_text(TINY.format(root=ROOT))
    cfg = load_config(str(d / "tiny.yaml"))
    paddle.seed(0)
    model = build_model(cfg.model)
    betas = GaussianDiffusion.from_config(cfg.diffusion).betas
    save_inference_file(str(d / CKPT), model.state_dict(), betas, {}, cfg)
    weights = random_weights_pth(str(d / WEIGHTS_FILE))
    # --engine auto exports the Inception here (test_inception's export when run with it)
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = engine_cache(tmp_path_factory)
    yield {"dir": d, "cfg": cfg, "model": model, "train": data["train_data"], "weights": weights}
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


@pytest.fixture(scope="module")
def evaluated(work, tmp_path_factory):
    """fid_stats, then an eval interrupted after its first batch, then the resumed eval."""
    d, w = work["dir"], work["weights"]
    old = os.getcwd()
    os.chdir(d)
    try:
        assert cli("--mode", "fid_stats", "--data_dir", "ds", "--inception_weights", w) == 0
        import ppddpm.samplers.batched as sampling
        real_generate, offsets = sampling.generate, []

        def interrupted(model, sampler, n, shape, batch, seed=0, index_offset=0, progress=True):
            if offsets:
                raise KeyboardInterrupt
            offsets.append(index_offset)
            return real_generate(model, sampler, n, shape, batch, seed, index_offset, progress)
        eval_args = ("--mode", "eval", "--data_dir", "ds", "--pretrained_path", CKPT,
                     "--num_samples", str(N), "--inception_weights", w, "--engine", "dygraph")
        sampling.generate = interrupted
        try:
            assert cli(*eval_args) == 130
        finally:
            sampling.generate = real_generate
        partial = sorted(os.listdir(d / "sample" / "ddpm_cifar10_test_eval.partial"))
        assert partial == ["0000000-0000004.npy", "meta.json"]

        resumed = []

        def recording(model, sampler, n, shape, batch, seed=0, index_offset=0, progress=True):
            resumed.append((index_offset, n))
            return real_generate(model, sampler, n, shape, batch, seed, index_offset, progress)
        sampling.generate = recording
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                assert cli(*eval_args) == 0
        finally:
            sampling.generate = real_generate
    finally:
        os.chdir(old)
    return {"resumed": resumed, "stderr": err.getvalue(), "json": json.loads(
        (d / "sample" / f"eval_ddpm_cifar10_test_{N}.json").read_text())}


def test_fid_stats_file(work, evaluated):
    stats = np.load(work["dir"] / "ds" / "fid_stats_cifar10_32_train.npz")
    assert stats["mu"].shape == (2048,) and stats["sigma"].shape == (2048, 2048)
    assert stats["mu"].dtype == stats["sigma"].dtype == np.float64
    assert int(stats["num_images"]) == 10 and stats["features"].shape == (10, 2048)
    assert str(stats["inception_sha256"]) == file_digest(work["weights"])
    assert float(stats["is_mean"]) == pytest.approx(1.0)    # 10 images, one per split
    # the training images, unflipped, in order (NCHW on disk -> NHWC for the network)
    model, _ = load_inception(work["weights"])
    feats, _ = inception_features(model, from_array(work["train"][:3], "train"), progress=False)
    # (fid_stats ran with --engine auto: the oneDNN predictor; this is the dynamic graph)
    assert np.abs(stats["features"][:3] - feats).max() <= 1e-4 * np.abs(feats).max()
    mu, sigma = feature_statistics(stats["features"])
    np.testing.assert_allclose(stats["mu"], mu)
    np.testing.assert_allclose(stats["sigma"], sigma)


def test_eval_resumes_only_the_missing_batches_and_equals_one_run(work, evaluated):
    # batches of 4: [0,4) was done before the interrupt; the resumed run drew [4,8) and [8,10)
    assert evaluated["resumed"] == [(4, 4), (8, 2)]
    d = work["dir"]
    saved = np.load(d / "sample" / f"ddpm_cifar10_test_eval{N}.npz")["arr_0"]
    assert not (d / "sample" / "ddpm_cifar10_test_eval.partial").exists()
    # the same images as one uninterrupted run with another batch size
    cfg = work["cfg"]
    sampler = build_sampler(GaussianDiffusion.from_config(cfg.diffusion), cfg.sample)
    once = generate(work["model"], sampler, N, [3, 32, 32], 7, seed=0, progress=False)
    np.testing.assert_array_equal(saved, once)


def test_eval_json(work, evaluated):
    r = evaluated["json"]
    assert r["num_samples"] == N and r["comparable_with_published"] is False
    assert r["checkpoint_iteration"] == 123 and r["sampler_steps"] == 10
    assert r["sampler"].startswith("DDPM ancestral, 10 steps")
    assert r["inception_sha256"] == file_digest(work["weights"])
    assert r["reference_num_images"] == 10
    # 10 images in 10 splits: one image per split, so p(y) = p(y|x) and IS is exactly 1
    assert r["is_mean"] == pytest.approx(1.0, abs=1e-9) and r["is_std"] == pytest.approx(0, abs=1e-9)
    assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
    assert np.isfinite(r["fid"]) and r["fid"] > 0 and np.isfinite(r["kid_mean"])
    # The JSON's numbers are those of the saved samples against the reference; the FID is
    # checked against an independent formula: Tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)).
    from ppddpm.evaluate.metrics.inception_engine import InceptionPredictor
    model, digest = load_inception(work["weights"])
    runner = InceptionPredictor(model, digest)      # the export cached by fid_stats (auto)
    samples = open_samples(str(work["dir"] / "sample" / f"ddpm_cifar10_test_eval{N}.npz"))
    feats, logits = inception_features(model, samples, progress=False, runner=runner)
    ref = load_stats(str(work["dir"] / "ds" / "fid_stats_cifar10_32_train.npz"))
    mu, sigma = feature_statistics(feats)
    w, v = np.linalg.eigh(sigma)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.clip(np.linalg.eigvalsh(root @ ref.sigma @ root), 0, None)
    fid = np.sum((mu - ref.mu) ** 2) + np.trace(sigma) + np.trace(ref.sigma) - 2 * np.sum(np.sqrt(lam))
    # (the eval ran the dynamic graph, these features come from the predictor: ~1e-6 apart)
    assert r["fid"] == pytest.approx(fid, rel=1e-4)
    assert (r["precision"], r["recall"]) == precision_recall(ref.features, feats)
    assert r["kid_mean"] == pytest.approx(kernel_inception_distance(ref.features, feats)[0], rel=1e-4)


def test_eval_warns_below_50k(evaluated):
    err = evaluated["stderr"]
    assert f"warning: {N} samples" in err and "NOT comparable" in err and "50000" in err


def test_eval_reuses_finished_samples(work, evaluated, monkeypatch):
    # A second eval of the same settings loads the finished .npz instead of sampling again.
    from ppddpm.cli import eval_options, resolve_config
    from ppddpm.cli.args import build_parser
    from ppddpm.evaluate.run import _generate_for_eval
    import ppddpm.samplers.batched as sampling
    monkeypatch.chdir(work["dir"])
    monkeypatch.setattr(sampling, "generate", lambda *a, **k: pytest.fail("regenerated"))
    args = build_parser("t").parse_args(["--pretrained_path", CKPT, "--num_samples", str(N),
                                         "--engine", "dygraph", "--quiet"])
    cfg = resolve_config(args, "tiny.yaml")
    source, info = _generate_for_eval(eval_options(args, cfg), cfg)
    saved = np.load(work["dir"] / "sample" / f"ddpm_cifar10_test_eval{N}.npz")["arr_0"]
    np.testing.assert_array_equal(np.stack(list(source)), saved)
    assert info["checkpoint_iteration"] == 123
    # other settings (another seed) do not reuse it: they would sample
    args.sample_seed = 5
    cfg = resolve_config(args, "tiny.yaml")
    with pytest.raises(pytest.fail.Exception, match="regenerated"):
        _generate_for_eval(eval_options(args, cfg), cfg)


def test_eval_checks_the_reference_before_sampling(work, capfd, monkeypatch):
    monkeypatch.chdir(work["dir"])
    import ppddpm.samplers.batched as sampling
    monkeypatch.setattr(sampling, "generate", lambda *a, **k: pytest.fail("sampled first"))
    np.savez(work["dir"] / "broken.npz", m=np.zeros(3))
    assert cli("--mode", "eval", "--data_dir", "ds", "--pretrained_path", CKPT, "--num_samples",
               str(N), "--inception_weights", work["weights"], "--engine", "dygraph",
               "--fid_stats", "broken.npz", "--sample_dir", "fresh") == 2
    err = capfd.readouterr().err
    assert "broken.npz is not an FID statistics file" in err and "Traceback" not in err
    # no statistics and no data set to compute them from: also before any sampling
    assert cli("--mode", "eval", "--data_dir", "nodata", "--pretrained_path", CKPT,
               "--inception_weights", work["weights"], "--sample_dir", "fresh") == 2
    assert "CIFAR-10 not found" in capfd.readouterr().err
    assert not (work["dir"] / "fresh").exists()


def test_sample_sources_agree(work, evaluated, tmp_path):
    from PIL import Image
    arr = np.load(work["dir"] / "sample" / f"ddpm_cifar10_test_eval{N}.npz")["arr_0"]
    for i, img in enumerate(arr):
        Image.fromarray(img).save(tmp_path / f"{i:03d}.png")
    Image.fromarray(arr[0][:, :, 0]).save(tmp_path / "grey.png")        # L mode -> RGB
    folder = list(from_folder(str(tmp_path)))
    assert len(folder) == N + 1 and all(f.shape == (32, 32, 3) for f in folder)
    np.testing.assert_array_equal(np.stack(folder[:N]), arr)
    np.testing.assert_array_equal(folder[N], np.repeat(arr[0][:, :, :1], 3, axis=2))
    nchw = list(from_array(arr.transpose(0, 3, 1, 2), "nchw"))
    np.testing.assert_array_equal(np.stack(nchw), arr)
    with pytest.raises(Exception, match="uint8"):
        list(from_array(arr.astype(np.float32), "floats"))


def test_pytorch_fid_statistics_give_fid_without_precision_recall():
    rs = np.random.RandomState(0)
    ref_feats, feats = rs.standard_normal((40, 8)), rs.standard_normal((30, 8)) + 0.5
    mu, sigma = feature_statistics(ref_feats)
    full = compute_metrics(feats, rs.standard_normal((30, 5)), ReferenceStats(
        mu, sigma, ref_feats.astype(np.float32), 40, "x", None))
    only = compute_metrics(feats, rs.standard_normal((30, 5)), ReferenceStats(
        mu, sigma, None, None, "pytorch-fid", None))
    assert only["fid"] == pytest.approx(full["fid"], rel=1e-12)
    assert only["precision"] is None and only["kid_mean"] is None and full["precision"] is not None
    assert any("mu/sigma" in n for n in only["notes"])


def test_pytorch_fid_npz_is_read(tmp_path):
    np.savez(tmp_path / "pfid.npz", mu=np.zeros(4, np.float32), sigma=np.eye(4))
    ref = load_stats(str(tmp_path / "pfid.npz"))
    assert ref.features is None and ref.weights_sha256 is None and ref.mu.dtype == np.float64
    np.savez(tmp_path / "bad.npz", m=np.zeros(4))
    with pytest.raises(Exception, match="'mu' and 'sigma'"):
        load_stats(str(tmp_path / "bad.npz"))


def test_eval_without_weights_says_what_to_download(work, capfd, monkeypatch):
    monkeypatch.chdir(work["dir"])
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert cli("--mode", "eval", "--data_dir", "ds", "--pretrained_path", CKPT) == 2
    err = capfd.readouterr().err
    assert WEIGHTS_FILE in err and WEIGHTS_URL in err and "Traceback" not in err


def test_eval_refuses_a_partial_run_of_other_settings(work, capfd, monkeypatch):
    monkeypatch.chdir(work["dir"])
    part = work["dir"] / "other" / "ddpm_cifar10_test_eval.partial"
    part.mkdir(parents=True)
    (part / "meta.json").write_text(json.dumps({"seed": 99}))
    assert cli("--mode", "eval", "--data_dir", "ds", "--pretrained_path", CKPT, "--sample_dir",
               "other", "--inception_weights", work["weights"], "--engine", "dygraph") == 2
    err = capfd.readouterr().err
    assert "holds samples of other settings" in err and "seed: 99 -> 0" in err


def test_missing_ranges_and_checkpoint_iteration():
    chunks = [(0, 5, "a"), (10, 15, "b")]
    assert missing_ranges(chunks, 17, 4) == [(5, 9), (9, 10), (15, 17)]
    assert missing_ranges(chunks, 12, 100) == [(5, 10)]
    assert missing_ranges([(0, 20, "c")], 12, 4) == []
    assert checkpoint_iteration("ckpts/cifar10_ckpt_iter_40000.pdparam") == 40000
    assert checkpoint_iteration("ddpm_cifar10_i800000_ema.pdparam") == 800000
    assert checkpoint_iteration("ddpm_cifar10_i5.pdparams") == 5
    assert checkpoint_iteration("converted_google_ddpm.pdparams") is None


def test_two_ranks_share_the_missing_batches(tmp_path):
    # Two gloo ranks resume a run whose folder already holds batch [2, 4) (deliberately
    # zeros, so reuse is visible); the rest must equal single-process generation.
    import paddle.distributed as dist
    from dist_workers import tiny_config
    from eval_workers import resumable_generation
    cfg = tiny_config(str(tmp_path))
    cfg.sample.sampler, cfg.sample.stride = "ddim", 10
    paddle.seed(1)
    model = build_model(cfg.model)
    for p in model.parameters():      # non-zero output layers: the images depend on the net
        p.set_value(paddle.randn(p.shape) * 0.05)
    weights = str(tmp_path / "tiny.pdparam")
    save_inference_file(weights, model.state_dict(),
                        GaussianDiffusion.from_config(cfg.diffusion).betas, {}, cfg)
    folder = tmp_path / "run.partial"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"test": 1}))
    np.save(folder / "0000002-0000004.npy", np.zeros((2, 16, 16, 3), np.uint8))
    out = str(tmp_path / "two.npy")
    dist.spawn(resumable_generation, args=(str(folder), weights, 7, 2, out), nprocs=2,
               backend="gloo")
    got = np.load(out)
    sampler = build_sampler(GaussianDiffusion.from_config(cfg.diffusion), cfg.sample)
    model.eval()
    want = generate(model, sampler, 7, [3, 16, 16], 7, seed=0, progress=False)
    assert (got[2:4] == 0).all()
    # missing [0,2), [4,6), [6,7) dealt round-robin
    assert open(out + ".rank0.txt").read() == "0 6" and open(out + ".rank1.txt").read() == "4"
    np.testing.assert_array_equal(got[:2], want[:2])
    np.testing.assert_array_equal(got[4:], want[4:])
    assert sorted(os.listdir(folder)) == ["0000000-0000002.npy", "0000002-0000004.npy",
                                          "0000004-0000006.npy", "0000006-0000007.npy", "meta.json"]


def test_reference_source_of_an_image_folder(tmp_path):
    # CelebA-HQ-style tree: every readable image, unflipped, resized + centre-cropped to
    # data.image_size, in the data set's order (the corrupt file is skipped with a warning).
    from helpers_data import make_fake_image_tree
    from ppddpm.config import DataConfig
    from ppddpm.data.folders import ImageFolderDataset
    from ppddpm.evaluate.metrics.stats import dataset_source, default_stats_path
    tree = make_fake_image_tree(str(tmp_path / "faces"))
    cfg = DataConfig(dataset="celeba_hq", data_dir=tree["root"], image_size=16, random_flip=True)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        source = dataset_source(cfg)
    images = list(source)
    assert len(source) == len(images) == len(tree["good"])
    assert all(im.shape == (16, 16, 3) and im.dtype == np.uint8 for im in images)
    with pytest.warns(UserWarning):
        ds = ImageFolderDataset(tree["root"], 16, random_flip=False)
    for i, im in enumerate(images):
        np.testing.assert_array_equal(im, ds.load(i).transpose(1, 2, 0))
    assert default_stats_path(cfg).endswith("fid_stats_celeba_hq_16_train.npz")
