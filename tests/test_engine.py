"""The Paddle Inference engine against the dynamic graph: same samples, any batch size,
cached exports, and clear errors or a fallback when the export fails."""
import os

import numpy as np
import paddle
import pytest

from ppddpm.engines import predictor as engine_mod
from ppddpm.engines import cache as engine_cache
from ppddpm.config import Config, ModelConfig
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.engines import EngineError, InferenceModel, make_engine
from ppddpm.models import build_model
from ppddpm.samplers import DDIMSampler
from ppddpm.samplers.batched import generate
from ppddpm.diffusion.schedules import get_beta_schedule

SHAPE = [3, 16, 16]


def tiny(arch="unet", seed=0, **kw):
    """A small network with every weight non-zero (the zero-initialised output convs
    would make every output 0 and every comparison vacuous)."""
    kw.setdefault("attn_resolutions", [8] if arch in ("unet", "legacy_unet") else [])
    cfg = ModelConfig(arch=arch, ch=32, ch_mult=[1, 2], num_res_blocks=1, resolution=16,
                      num_steps=20, dropout=0.1, **kw)
    paddle.seed(seed)
    model = build_model(cfg)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.set_value(p.numpy() + rng.normal(0, 0.05, p.shape).astype("float32"))
    model.eval()
    return model, cfg


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="module")
def unet():
    return tiny()[0]


@pytest.fixture(scope="module")
def engine(unet, cache):
    return InferenceModel(unet, SHAPE, cache_dir=cache, threads=1)


def sampler(eta=0.5, clipped_eps=False):
    # A mild schedule (abar_T ~ 0.6): with abar_T ~ 0, x0 = (x - sqrt(1-abar) eps)/sqrt(abar)
    # would multiply float32 rounding by 1/sqrt(abar_T) and hide what is being compared.
    betas = get_beta_schedule("linear", 20, 1e-4, 0.05)
    return DDIMSampler(GaussianDiffusion(betas), num_steps=4, eta=eta, clipped_eps=clipped_eps)


def check_forward(engine, unet, sizes=(1, 3, 8, 5)):
    """One export serves every batch size (dynamic batch dimension), as the dygraph does."""
    rng = np.random.default_rng(1)
    for n in sizes:
        x = paddle.to_tensor(rng.standard_normal([n] + SHAPE).astype("float32"))
        t = paddle.to_tensor(rng.integers(0, 20, n))
        out = engine(x, t)
        assert isinstance(out, paddle.Tensor) and out.shape == [n] + SHAPE
        want = unet(x, t).numpy()
        assert np.abs(want).max() > 0.1
        np.testing.assert_allclose(out.numpy(), want, atol=1e-4, rtol=1e-4)


def test_forward_matches_dygraph_at_any_batch_size(unet, engine):
    check_forward(engine, unet)


def test_both_engines_give_the_same_samples(unet, engine):
    s = sampler(eta=0.5)   # eta > 0: the per-step noise is used too
    a = s.sample(engine, [3] + SHAPE, seed=7, progress=False).numpy()
    b = s.sample(unet, [3] + SHAPE, seed=7, progress=False).numpy()
    assert a.std() > 0.1
    np.testing.assert_allclose(a, b, atol=1e-4)
    # batches of 2 (+ a last one of 1) through the predictor = one batch of 5 in dygraph
    got = generate(engine, s, 5, SHAPE, batch_size=2, seed=3, progress=False)
    want = generate(unet, s, 5, SHAPE, batch_size=5, seed=3, progress=False)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1   # uint8 rounding only
    assert (got != want).mean() < 1e-3


def test_second_construction_reuses_the_cache(unet, engine, cache, monkeypatch):
    assert engine.exported and os.path.isdir(engine.path)
    files = sorted(os.listdir(engine.path))
    mtimes = [os.path.getmtime(os.path.join(engine.path, f)) for f in files]

    def no_export(*a, **k):
        raise AssertionError("exported again although the cache holds this network")
    monkeypatch.setattr(engine_mod, "export", no_export)
    again = InferenceModel(unet, SHAPE, cache_dir=cache, threads=1)
    assert not again.exported and again.path == engine.path
    assert [os.path.getmtime(os.path.join(engine.path, f)) for f in files] == mtimes
    x, t = paddle.ones([2] + SHAPE), paddle.to_tensor([0, 19])
    np.testing.assert_allclose(again(x, t).numpy(), engine(x, t).numpy(), atol=1e-6)


def test_new_weights_or_shape_get_a_new_export(unet, engine, cache):
    other, _ = tiny(seed=1)
    assert InferenceModel(other, SHAPE, cache_dir=cache, threads=1).path != engine.path
    key = engine_mod.engine_key
    assert key(unet, SHAPE, False, "cpu") != key(unet, [3, 32, 32], False, "cpu")
    assert key(unet, SHAPE, False, "cpu") == key(tiny()[0], SHAPE, False, "cpu")


def test_carries_what_samplers_read(cache):
    legacy, _ = tiny("legacy_unet")
    eng = make_engine(legacy, "inference", image_shape=SHAPE, cache_dir=cache, threads=1)
    assert isinstance(eng, InferenceModel) and eng.data_range == (0.0, 1.0)
    # data_range (0, 1) is what is checked: the random legacy net's x0 is clipped almost
    # everywhere, and with eps re-derived from the clipped x0 the engines agree to 1e-4
    # (its raw eps differ by up to the engine's check tolerance, 1e-3 relative).
    s = sampler(eta=0.0, clipped_eps=True)
    a = s.sample(eng, [2] + SHAPE, seed=1, progress=False).numpy()
    b = s.sample(legacy, [2] + SHAPE, seed=1, progress=False).numpy()
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_class_labels(cache):
    model, _ = tiny(num_classes=3)
    eng = InferenceModel(model, SHAPE, cache_dir=cache, threads=1)
    x, t = paddle.randn([3] + SHAPE), paddle.to_tensor([1, 5, 9])
    y = paddle.to_tensor([0, 2, 3])   # 3 = "no label"
    np.testing.assert_allclose(eng(x, t, y).numpy(), model(x, t, y).numpy(), atol=1e-4)
    np.testing.assert_allclose(eng(x, t).numpy(), model(x, t).numpy(), atol=1e-4)
    assert not np.allclose(eng(x, t, paddle.to_tensor([0, 0, 0])).numpy(), eng(x, t).numpy())


class NotExportable(paddle.nn.Layer):
    """A network that refuses to be traced into a static graph (as one whose forward
    needs tensor values on the host would)."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 3, 3, padding=1)

    def forward(self, x, t, y=None):
        if not paddle.in_dynamic_mode():
            raise RuntimeError("this network runs only in the dynamic graph")
        return self.conv(x) * t.astype("float32").reshape([-1, 1, 1, 1])


def test_failed_export_raises_or_falls_back(tmp_path):
    model = NotExportable()
    with pytest.raises(EngineError, match="could not export.*RuntimeError: this network runs only.*--engine dygraph"):
        make_engine(model, "inference", image_shape=SHAPE, cache_dir=str(tmp_path), threads=1)
    said = []
    got = make_engine(model, "auto", image_shape=SHAPE, cache_dir=str(tmp_path), threads=1,
                      notice=said.append)
    assert got is model
    assert len(said) == 1 and said[0].startswith("notice: sampling with the dynamic graph")
    assert "\n" not in said[0]
    assert make_engine(model, "dygraph") is model
    with pytest.raises(EngineError, match="unknown engine 'fast'"):
        make_engine(model, "fast")
    assert not [f for f in os.listdir(tmp_path) if not f.startswith(".")]   # nothing cached


def test_a_failed_export_leaves_nothing_in_paddle_jits_records(tmp_path):
    """A failed trace leaves its parameters' Values in paddle.jit's records, keyed by the
    program's address; the next program built there used them after they were freed (a
    SIGFPE inside the next export, about every other run of this file before the fix)."""
    before = engine_mod._trace_record_keys()
    with pytest.raises(EngineError):   # both the traced and the dy2static export fail
        make_engine(NotExportable(), "inference", image_shape=SHAPE, cache_dir=str(tmp_path), threads=1)
    assert engine_mod._trace_record_keys() == before
    with pytest.raises(RuntimeError), engine_mod.forget_failed_trace():
        paddle.jit.save(NotExportable(), str(tmp_path / "m"), input_spec=engine_mod._input_spec(SHAPE, False))
    assert engine_mod._trace_record_keys() == before


def test_export_that_disagrees_is_rejected_and_not_cached(tmp_path, monkeypatch):
    model, _ = tiny(seed=2)
    real = InferenceModel._run
    monkeypatch.setattr(InferenceModel, "_run", lambda self, *a: real(self, *a) + 1e-2)
    with pytest.raises(EngineError, match="disagrees with the dynamic graph"):
        InferenceModel(model, SHAPE, cache_dir=str(tmp_path), threads=1)
    assert os.listdir(tmp_path) == []


def test_cli_engines_write_the_same_images(tmp_path, monkeypatch):
    from ppddpm.cli import main
    from ppddpm.convert.pretrained import save_inference_file
    model, mcfg = tiny()
    cfg = Config()
    cfg.model = mcfg
    cfg.diffusion.num_diffusion_steps, cfg.diffusion.beta_end = 20, 0.2
    path = save_inference_file(str(tmp_path / "net.pdparam"), model.state_dict(),
                               get_beta_schedule("linear", 20, 1e-4, 0.2), {}, cfg)
    monkeypatch.setenv(engine_cache.CACHE_ENV, str(tmp_path / "cache"))  # restored afterwards
    images = {}
    for kind in ("dygraph", "inference"):
        argv = ["--mode", "denoise", "--pretrained_path", path, "--num_images", "4-2-2",
                "--sampler", "ddim", "--ddim_steps", "3", "--batchsize", "3", "--quiet",
                "--sample_postfix", "ddim_cifar10_test",   # a 16x16 file is named after itself
                "--sample_dir", str(tmp_path / kind), "--save_npz", "True", "--engine", kind]
        assert main(os.path.join(os.path.dirname(__file__), "..", "configs", "cifar10.yaml"),
                    "test", argv=argv) == 0
        images[kind] = np.load(tmp_path / kind / "ddim_cifar10_test.npz")["arr_0"]
    assert os.listdir(tmp_path / "cache")   # the inference run exported into the cache
    a, b = images["dygraph"].astype(int), images["inference"].astype(int)
    assert a.shape == (4, 16, 16, 3) and np.abs(a - b).max() <= 1


def test_cache_keeps_only_the_most_recently_used(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_mod, "CACHE_KEEP", 2)
    paths = [InferenceModel(tiny(seed=s)[0], SHAPE, cache_dir=str(tmp_path), threads=1).path
             for s in (10, 11)]
    os.utime(paths[0], (1, 1))          # long unused
    other = tmp_path / "inception-export"   # not this engine's: never pruned
    other.mkdir()
    os.utime(other, (0, 0))
    InferenceModel(tiny(seed=12)[0], SHAPE, cache_dir=str(tmp_path), threads=1)
    assert len(os.listdir(tmp_path)) == 3 and not os.path.exists(paths[0])
    assert os.path.exists(paths[1]) and other.exists()


def test_damaged_cache_entry_is_exported_again(unet, tmp_path):
    first = InferenceModel(unet, SHAPE, cache_dir=str(tmp_path), threads=1)
    with open(os.path.join(first.path, "model.pdiparams"), "wb") as f:
        f.write(b"truncated")
    again = InferenceModel(unet, SHAPE, cache_dir=str(tmp_path), threads=1)
    assert again.exported and again.path == first.path
    x, t = paddle.ones([2] + SHAPE), paddle.to_tensor([0, 19])
    np.testing.assert_allclose(again(x, t).numpy(), unet(x, t).numpy(), atol=1e-4)


@pytest.mark.parametrize("omp, expect", [(None, "cores"), ("1", 1)])
def test_sampling_threads_follow_the_users_omp_num_threads(omp, expect):
    """Paddle sets OMP_NUM_THREADS=1 at import; ppddpm reads the user's value first."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    code = ("import os, ppddpm; from ppddpm.runtime.threads import sampling_threads, available_cores; "
            "print(sampling_threads(), available_cores(), os.environ.get('OMP_NUM_THREADS'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    threads, cores, env_after = int(out[0]), int(out[1]), out[2]
    assert threads == (cores if expect == "cores" else expect)
    assert env_after == (omp or "1")   # Paddle's own default was still applied


def test_snapshot_engine_leaves_no_export_behind(unet):
    from ppddpm.engines import snapshot_engine
    x, t = paddle.ones([3] + SHAPE), paddle.to_tensor([0, 7, 19])
    with snapshot_engine(unet, SHAPE) as net:
        assert isinstance(net, InferenceModel)
        folder = net.cache_dir
        np.testing.assert_allclose(net(x, t).numpy(), unet(x, t).numpy(), atol=1e-4)
    assert not os.path.exists(folder)
    assert unet.training is False   # the EMA copy stays in eval mode; weights untouched


def check_micro_batches(eng, model):
    """A batch larger than the engine's micro-batch runs in chunks (the last one short); the
    result equals one call per batch and the dynamic graph, labels included."""
    assert eng.micro_batch == engine_mod.micro_batch_for(SHAPE) == 64   # 16384 px / (16 x 16)
    rng = np.random.default_rng(2)
    x = paddle.to_tensor(rng.standard_normal([5] + SHAPE).astype("float32"))
    t, y = paddle.to_tensor([0, 3, 7, 11, 19]), paddle.to_tensor([0, 1, 2, 3, 1])
    whole = eng(x, t, y).numpy()
    calls = []
    run = eng._run
    eng._run = lambda *a: calls.append(len(a[0])) or run(*a)
    eng.micro_batch = 2
    chunked = eng(x, t, y).numpy()
    assert calls == [2, 2, 1]
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_allclose(chunked, model(x, t, y).numpy(), atol=1e-4, rtol=1e-4)


def test_micro_batches_give_the_same_outputs_with_labels(cache):
    model, _ = tiny(num_classes=3, seed=9)
    check_micro_batches(InferenceModel(model, SHAPE, cache_dir=cache, threads=1), model)


def test_micro_batch_follows_the_image_size():
    assert engine_mod.micro_batch_for([3, 32, 32]) == 16    # CIFAR-10: 16 images per call
    assert engine_mod.micro_batch_for([1, 28, 28]) == 20
    assert engine_mod.micro_batch_for([3, 64, 64]) == 4
    assert engine_mod.micro_batch_for([3, 256, 256]) == 1   # never less than one image


def test_export_leaves_the_callers_network_as_it_was(tmp_path, monkeypatch):
    """The traced export needs no copy of the weights; the network keeps its mode, weights and
    outputs. The dy2static fallback (the toy MLP) still works, on a copy."""
    model, cfg = tiny(seed=3)
    toy = build_model(ModelConfig(arch="mlp", resolution=1, in_channels=2, out_channels=2, ch=16,
                                  num_res_blocks=2, dropout=0.0))
    copied = []
    real_deepcopy = engine_mod.copy.deepcopy

    def deepcopy(obj, *rest):
        if obj is model or obj is toy:
            copied.append(obj)
        return real_deepcopy(obj, *rest)
    monkeypatch.setattr(engine_mod.copy, "deepcopy", deepcopy)
    model.train()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    engine_mod.export(model, str(tmp_path), SHAPE, False)
    assert model.training and engine_mod.model_files(str(tmp_path)) is not None
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    model.eval()
    x, t = paddle.randn([2] + SHAPE), paddle.to_tensor([1, 2])
    eng = InferenceModel(model, SHAPE, cache_dir=str(tmp_path / "cache"), threads=1)
    np.testing.assert_allclose(eng(x, t).numpy(), model(x, t).numpy(), atol=1e-4)
    toy_dir = tmp_path / "toy"
    toy_dir.mkdir()
    engine_mod.export(toy, str(toy_dir), [2, 1, 1], False)
    assert engine_mod.model_files(str(toy_dir)) is not None and toy.training
    assert copied == [toy]   # only the fallback copied a network
