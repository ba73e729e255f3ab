"""The FID Inception in Paddle against pytorch-fid, and the .pth reader against real
torch.save files, through fixtures made by tools/make_inception_fixture.py (no PyTorch here)."""
import os
import zipfile

import numpy as np
import paddle
import pytest

from helpers_inception import (FIXTURES, engine_cache, fixture_meta, large_image,
                               random_weights_pth, write_pth)
from ppddpm.errors import CheckpointError, PPDDPMError
from ppddpm.evaluate.metrics.features import from_array, inception_features
from ppddpm.evaluate.metrics.inception import (FIDInceptionV3, cache_path_for, file_digest,
                                      load_inception, torch_keys_and_shapes)
from ppddpm.evaluate.metrics.inception_weights import (ENV_VAR, WEIGHTS_FILE, WEIGHTS_URL,
                                              InceptionWeightsError, resolve_weights_path)
from ppddpm.io.pth_reader import PthError, read_pth

FX = os.path.join(FIXTURES, "inception_pth_{}.pth")
REF = np.load(os.path.join(FIXTURES, "inception_parity.npz"))


# -- .pth reader --------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_reader_reads_real_torch_files(layout):
    expected = np.load(os.path.join(FIXTURES, "inception_pth_expected.npz"))
    state = read_pth(FX.format(layout))
    assert list(state) == list(expected.files)           # order kept
    for key in expected.files:
        want, got = expected[key], state[key]
        assert got.shape == want.shape, key
        assert got.dtype == want.dtype, key               # bf16 is widened to float32
        np.testing.assert_array_equal(got, want, err_msg=key)
    # views: a transpose (strides) and a row slice (storage offset) of one storage
    np.testing.assert_array_equal(state["transposed"].T[2:4], state["rows"])
    assert state["transposed"].flags.c_contiguous


@pytest.mark.parametrize("kind,words", [
    ("module", ["torch.nn.modules.linear.Linear", "not a plain state dict", "state_dict()"]),
    ("nested", ["'state_dict'", "nested dict", "state_dict()"]),
    ("tensor", ["single tensor", "not a state dict"]),
])
def test_reader_refuses_what_is_not_a_state_dict(kind, words):
    with pytest.raises(PthError) as err:
        read_pth(FX.format(kind))
    for w in words:
        assert w in str(err.value)
    assert isinstance(err.value, CheckpointError)          # printed without traceback by the CLI


def test_reader_refuses_missing_corrupt_and_truncated(tmp_path):
    with pytest.raises(PthError, match="does not exist"):
        read_pth(str(tmp_path / "nope.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(PthError, match="not a PyTorch file|neither a zip"):
        read_pth(str(junk))
    legacy = open(FX.format("legacy"), "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(legacy[:-40])
    with pytest.raises(PthError, match="truncated"):
        read_pth(str(cut))
    bad_zip = tmp_path / "bad.pth"
    with zipfile.ZipFile(FX.format("zip")) as src, zipfile.ZipFile(bad_zip, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("/data/0"):
                dst.writestr(item, src.read(item))
    with pytest.raises(PthError, match="missing from the archive"):
        read_pth(str(bad_zip))


def test_writer_round_trips_through_reader(tmp_path):
    state = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array(7, np.int64),
             "c": np.linspace(0, 1, 4)}
    write_pth(str(tmp_path / "w.pth"), state)
    back = read_pth(str(tmp_path / "w.pth"))
    assert list(back) == ["a", "b", "c"]
    for k in state:
        np.testing.assert_array_equal(back[k], state[k])
        assert back[k].dtype == state[k].dtype


# -- the network ---------------------------------------------------------------------------
def test_keys_and_shapes_match_pytorch_fid():
    ref = [(k, tuple(s)) for k, s in fixture_meta()["keys"] if not k.endswith("num_batches_tracked")]
    assert torch_keys_and_shapes(FIDInceptionV3()) == ref


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_weights_pth(str(tmp_path_factory.mktemp("inc") / WEIGHTS_FILE))


def _close(got, want):
    """Within 1e-4 of the largest reference magnitude, element by element."""
    scale = np.abs(want).max()
    err = np.abs(got - want).max()
    assert err <= 1e-4 * scale, f"max |diff| {err:.3g} vs scale {scale:.3g}"


def test_parity_with_pytorch_fid_through_the_pth_reader(weights, tmp_path_factory):
    # Also the oneDNN predictor export (made, checked against the dynamic graph and cached in
    # a session folder, where the CLI tests find it again).
    from ppddpm.evaluate.metrics.inception_engine import InceptionPredictor, _key
    model, digest = load_inception(weights)
    assert len(digest) == 64
    cache = engine_cache(tmp_path_factory)
    runner = InceptionPredictor(model, digest, threads=1, cache_dir=cache)
    assert os.path.isdir(os.path.join(cache, _key(digest)))
    for tag, images in (("small", REF["images_small"]), ("large", large_image())):
        for engine in (None, runner):
            feats, logits_unbiased = inception_features(model, from_array(images, tag),
                                                        progress=False, runner=engine)
            _close(feats, REF[f"pool3_{tag}"])
            _close(logits_unbiased, REF[f"logits_unbiased_{tag}"])
        x = paddle.to_tensor(images.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
        with paddle.no_grad():
            _, logits = model(x)
        _close(logits.numpy(), REF[f"logits_{tag}"])
        # not trivially small: the features carry signal that a wrong layer would change
        assert np.abs(REF[f"pool3_{tag}"]).max() > 1.0


def test_pdparams_cache_is_made_once_and_tied_to_the_pth(weights):
    cached = cache_path_for(weights)
    assert os.path.isfile(cached)                    # written by the first load
    model, digest = load_inception(cached)           # the cache can be passed itself
    assert digest == file_digest(weights)
    # a cache whose recorded .pth digest differs is not trusted: it is rebuilt
    obj = paddle.load(cached, return_numpy=True)
    want_bias = obj["state"]["fc.bias"].copy()
    np.testing.assert_array_equal(model.fc.bias.numpy(), want_bias)
    obj["source_sha256"] = "0" * 64
    obj["state"]["fc.bias"] = obj["state"]["fc.bias"] + 1
    paddle.save(obj, cached)
    rebuilt, _ = load_inception(weights)
    np.testing.assert_array_equal(rebuilt.fc.bias.numpy(), want_bias)
    assert paddle.load(cached, return_numpy=True)["source_sha256"] == digest
    # an unreadable cache given directly is refused with the fix (and rebuilt from the .pth)
    with open(cached, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(CheckpointError, match="not a ppddpm Inception cache"):
        load_inception(cached)
    rebuilt, _ = load_inception(weights)
    np.testing.assert_array_equal(rebuilt.fc.bias.numpy(), want_bias)


def test_wrong_state_dict_is_refused(tmp_path):
    path = str(tmp_path / "other.pth")
    write_pth(path, {"conv.weight": np.zeros((2, 3, 3, 3), np.float32)})
    with pytest.raises(CheckpointError, match="not pytorch-fid's FID Inception") as err:
        load_inception(path)
    assert WEIGHTS_URL in str(err.value)


def test_missing_weights_name_the_file_and_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    for given in (None, str(tmp_path / "absent.pth")):
        with pytest.raises(InceptionWeightsError) as err:
            resolve_weights_path(given)
        text = str(err.value)
        assert WEIGHTS_FILE in text and WEIGHTS_URL in text and ENV_VAR in text
        assert "--inception_weights" in text and isinstance(err.value, PPDDPMError)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.pth"))
    (tmp_path / "env.pth").write_bytes(b"x")
    assert resolve_weights_path(None) == str(tmp_path / "env.pth")
