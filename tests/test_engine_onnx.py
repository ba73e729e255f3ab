"""The ONNX Runtime engine against the dynamic graph: same outputs and samples, class labels,
the repaired GroupNorm epsilon, the cache, auto's choice and the missing-extra error."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ppddpm.engines import predictor as engine_mod
from ppddpm.engines import onnx as engine_onnx
from ppddpm.engines import EngineError, auto_kinds, make_engine
from test_engine import SHAPE, check_forward, check_micro_batches, sampler, tiny

pytestmark = pytest.mark.skipif(
    not engine_onnx.available(),
    reason=f"the onnx extra is not installed ({', '.join(engine_onnx.missing_packages())}): "
           f"{engine_onnx.INSTALL_HINT}")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("onnx_engines"))


@pytest.fixture(scope="module")
def unet():
    return tiny(seed=4)[0]


@pytest.fixture(scope="module")
def engine(unet, cache):
    return engine_onnx.OnnxModel(unet, SHAPE, cache_dir=cache, threads=1)


def test_forward_and_samples_match_the_dynamic_graph(unet, engine):
    check_forward(engine, unet, sizes=(1, 3, 8))
    s = sampler(eta=0.5)   # eta > 0: the per-image noise streams are used too
    a = s.sample(engine, [3] + SHAPE, seed=7, progress=False).numpy()
    b = s.sample(unet, [3] + SHAPE, seed=7, progress=False).numpy()
    assert a.std() > 0.1
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_group_norm_epsilon_is_fixed_and_a_wrong_export_is_rejected(unet, engine, tmp_path,
                                                                    monkeypatch):
    """paddle2onnx 2.1 reads group_norm's float64 epsilon as garbage; retyped as float32 in the
    program it comes out right. A wrong epsilon must be refused by the check against the
    dynamic graph, including a negative one that makes the outputs NaN."""
    import json
    import onnx
    graph = onnx.load(os.path.join(engine.path, engine_onnx.ONNX_FILE))
    eps = [a.f for n in graph.graph.node if n.op_type == "InstanceNormalization"
           for a in n.attribute if a.name == "epsilon"]
    norms = [m for m in unet.sublayers() if isinstance(m, paddle.nn.GroupNorm)]
    assert len(eps) == len(norms) and np.allclose(eps, 1e-6, rtol=1e-6, atol=0)

    def negative_epsilons(graph_json):
        with open(graph_json) as f:
            text = f.read()
        bad = text.replace('{"#":"0.a_f64","D":1e-06},"N":"epsilon"',
                           '{"#":"0.a_f32","D":-1e+30},"N":"epsilon"')
        assert bad != text
        with open(graph_json, "w") as f:
            f.write(bad)
        json.loads(bad)
    monkeypatch.setattr(engine_onnx, "fix_norm_epsilons", negative_epsilons)
    with pytest.raises(EngineError, match="disagrees with the dynamic graph"):
        engine_onnx.OnnxModel(tiny(seed=5)[0], SHAPE, cache_dir=str(tmp_path / "bad"), threads=1)
    assert [f for f in os.listdir(tmp_path / "bad") if not f.startswith(".")] == []


def test_class_labels_and_a_doubled_guidance_batch(cache):
    model, _ = tiny(num_classes=3, seed=6)
    eng = engine_onnx.OnnxModel(model, SHAPE, cache_dir=cache, threads=1)
    x, t = paddle.randn([3] + SHAPE), paddle.to_tensor([1, 5, 9])
    y = paddle.to_tensor([0, 2, 3])   # 3 = "no label"
    np.testing.assert_allclose(eng(x, t, y).numpy(), model(x, t, y).numpy(), atol=1e-4)
    np.testing.assert_allclose(eng(x, t).numpy(), model(x, t).numpy(), atol=1e-4)
    # guidance calls once with [x, x] and [y, null]
    x2, t2 = paddle.concat([x, x]), paddle.concat([t, t])
    y2 = paddle.to_tensor([0, 1, 2, 3, 3, 3])
    np.testing.assert_allclose(eng(x2, t2, y2).numpy(), model(x2, t2, y2).numpy(), atol=1e-4)


def test_micro_batches_give_the_same_outputs_with_labels(cache):
    model, _ = tiny(num_classes=3, seed=9)
    check_micro_batches(engine_onnx.OnnxModel(model, SHAPE, cache_dir=cache, threads=1), model)


def test_weights_written_beside_the_graph_equal_paddle2onnx_own(tmp_path):
    """The graph converted without its weights plus the weights written from the network
    (external data) runs exactly as paddle2onnx's own conversion with the weights; a network
    whose program names a weight the mapping lacks gets the usual conversion."""
    import onnxruntime as ort
    model, _ = tiny("fpn", seed=8)
    paddle_dir = tmp_path / "paddle"
    paddle_dir.mkdir()
    net = engine_mod.export(model, str(paddle_dir), SHAPE, False)
    weights = {p.name: p for p in net.parameters()}
    outs = {}
    for name, given in (("split", weights), ("whole", None),
                        ("fallback", dict(list(weights.items())[1:]))):
        folder = tmp_path / name
        folder.mkdir()
        engine_onnx.convert(str(paddle_dir), str(folder / "model.onnx"), given)
        assert (folder / "weights.bin").exists() == (name == "split")
        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal([3] + SHAPE).astype(np.float32)
        outs[name] = session.run(None, {"x": x, "t": np.array([0, 7, 19])})[0]
    assert np.abs(outs["whole"]).max() > 0.1
    np.testing.assert_array_equal(outs["split"], outs["whole"])
    np.testing.assert_array_equal(outs["fallback"], outs["whole"])


def test_damaged_weights_file_is_exported_again(unet, tmp_path):
    first = engine_onnx.OnnxModel(unet, SHAPE, cache_dir=str(tmp_path), threads=1)
    with open(os.path.join(first.path, "weights.bin"), "r+b") as f:
        f.truncate(1000)
    again = engine_onnx.OnnxModel(unet, SHAPE, cache_dir=str(tmp_path), threads=1)
    assert again.exported and again.path == first.path
    x, t = paddle.ones([2] + SHAPE), paddle.to_tensor([0, 19])
    np.testing.assert_allclose(again(x, t).numpy(), unet(x, t).numpy(), atol=1e-4)


def test_legacy_network(cache):
    legacy, _ = tiny("legacy_unet", seed=7)
    eng = make_engine(legacy, "onnxruntime", image_shape=SHAPE, cache_dir=cache, threads=1)
    assert isinstance(eng, engine_onnx.OnnxModel) and eng.data_range == (0.0, 1.0)
    # As in test_engine's legacy check: the random legacy net's x0 is clipped almost
    # everywhere, so eps re-derived from the clipped x0 isolates the data_range handling
    # (the raw outputs are compared by the engine's own check at first use).
    s = sampler(eta=0.0, clipped_eps=True)
    a = s.sample(eng, [2] + SHAPE, seed=1, progress=False).numpy()
    b = s.sample(legacy, [2] + SHAPE, seed=1, progress=False).numpy()
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_cache_is_reused_and_kept_apart_from_the_predictors(unet, engine, cache, monkeypatch):
    assert engine.exported and sorted(os.listdir(engine.path)) == ["meta.json", "model.onnx",
                                                                   "weights.bin"]

    def no_export(*a, **k):
        raise AssertionError("exported again although the cache holds this network")
    monkeypatch.setattr(engine_mod, "export", no_export)
    again = engine_onnx.OnnxModel(unet, SHAPE, cache_dir=cache, threads=1)
    assert not again.exported and again.path == engine.path
    x, t = paddle.ones([2] + SHAPE), paddle.to_tensor([0, 19])
    np.testing.assert_allclose(again(x, t).numpy(), engine(x, t).numpy(), atol=1e-6)
    key = engine_mod.engine_key
    assert key(unet, SHAPE, False, "cpu", "onnxruntime") != key(unet, SHAPE, False, "cpu")


def test_released_network_serves_only_its_shape(unet, cache):
    eng = engine_onnx.OnnxModel(unet, SHAPE, cache_dir=cache, threads=1, keep_model=False)
    assert eng.model is None
    assert eng(paddle.ones([1] + SHAPE), paddle.to_tensor([3])).shape == [1] + SHAPE
    with pytest.raises(EngineError, match=r"built for \[3, 16, 16\] images"):
        eng(paddle.ones([1, 3, 8, 8]), paddle.to_tensor([3]))


def test_auto_prefers_onnxruntime_and_falls_back_to_the_predictor(unet, engine, cache, monkeypatch):
    eng = make_engine(unet, "auto", image_shape=SHAPE, cache_dir=cache, threads=1)
    assert isinstance(eng, engine_onnx.OnnxModel) and eng.path == engine.path
    monkeypatch.setattr(engine_onnx, "missing_packages", lambda: ["onnxruntime"])
    assert auto_kinds() == ["inference"]
    with pytest.raises(EngineError, match=r"needs onnxruntime: pip install \"ppddpm\[onnx\]\""):
        make_engine(unet, "onnxruntime", image_shape=SHAPE, cache_dir=cache, threads=1)


def test_auto_rule_by_size(monkeypatch):
    from ppddpm.pipeline import SMALL_MODEL_PARAMS, choose_engine_kind
    cifar, small = 35_700_000, 651_041
    for shape, params in (([3, 32, 32], cifar), ([1, 16, 16], small)):
        assert choose_engine_kind("auto", shape, params) == "auto"   # ONNX Runtime first
        assert choose_engine_kind("inference", shape, params) == "inference"
    # the toy MLP stays in the dygraph, where the trainer drew its samples
    assert choose_engine_kind("auto", [2, 1, 1], 40_000) == "dygraph"
    monkeypatch.setattr(engine_onnx, "missing_packages", lambda: ["onnxruntime"])
    assert choose_engine_kind("auto", [3, 32, 32], cifar) == "auto"          # the predictor
    assert choose_engine_kind("auto", [1, 16, 16], small) == "dygraph"
    assert choose_engine_kind("auto", [1, 16, 16], SMALL_MODEL_PARAMS) == "auto"
    assert choose_engine_kind("auto", [2, 1, 1], 40_000) == "dygraph"
    assert choose_engine_kind("onnxruntime", [2, 1, 1], 40_000) == "onnxruntime"


def test_cli_without_the_extra_says_how_to_install_it(tmp_path):
    from ppddpm.config import Config
    from ppddpm.convert.pretrained import save_inference_file
    from ppddpm.diffusion.schedules import get_beta_schedule
    model, mcfg = tiny()
    cfg = Config()
    cfg.model = mcfg
    cfg.diffusion.num_diffusion_steps = 20
    path = save_inference_file(str(tmp_path / "net.pdparam"), model.state_dict(),
                               get_beta_schedule("linear", 20, 1e-4, 0.02), {}, cfg)
    shadow = tmp_path / "shadow" / "onnxruntime"   # an onnxruntime that fails to import
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named onnxruntime')\n")
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(tmp_path / "shadow"), ROOT]))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_cifar10.py"), "--mode", "denoise",
         "--pretrained_path", path, "--num_images", "1-1-1", "--sampler", "ddim",
         "--ddim_steps", "2", "--engine", "onnxruntime", "--quiet",
         "--sample_dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in proc.stderr
    assert "--engine onnxruntime needs onnxruntime" in lines[-1]
    assert 'pip install "ppddpm[onnx]"' in lines[-1] and "--engine dygraph" in lines[-1]
