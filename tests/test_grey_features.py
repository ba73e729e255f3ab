"""Greyscale samples reach the Inception network as RGB (the grey value in all three
channels), as pytorch-fid's PIL convert('RGB') does: from arrays, .npz files, folders and
the training set (MNIST)."""
import numpy as np
from PIL import Image

from helpers_data import make_fake_mnist
from ppddpm.config import DataConfig
from ppddpm.io.images import save_individual, save_npz
from ppddpm.evaluate.metrics.features import from_array, from_folder, from_npz, inception_features
from ppddpm.evaluate.metrics.stats import dataset_source


class ChannelProbe:
    """Stands in for the Inception net: 'features' are the per-channel means of its input."""

    def preprocess(self, x):
        assert x.shape[1] == 3, x.shape
        return x

    def pool3(self, x):
        return x.mean(axis=[2, 3])

    def logits_unbiased(self, feats):
        return feats


def _features(source):
    return inception_features(ChannelProbe(), source, batch_size=3, progress=False)[0]


def test_grey_images_become_rgb_everywhere(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (5, 6, 6, 1), dtype=np.uint8)
    want = np.repeat(grey.reshape(5, -1).mean(1, keepdims=True) / 255.0, 3, axis=1)
    for source in (from_array(grey, "nhwc"), from_array(grey[..., 0], "nhw"),
                   from_npz(save_npz(grey, str(tmp_path / "g.npz")))):
        np.testing.assert_allclose(_features(source), want, rtol=1e-6)
    save_individual(grey, str(tmp_path / "pngs"))
    assert Image.open(tmp_path / "pngs" / "000000.png").mode == "L"
    np.testing.assert_allclose(_features(from_folder(str(tmp_path / "pngs"))), want, rtol=1e-6)
    fake = make_fake_mnist(str(tmp_path / "mnist"), n_train=4)
    source = dataset_source(DataConfig(dataset="mnist", data_dir=str(tmp_path / "mnist"),
                                       image_size=28, download=False))
    got = _features(source)
    np.testing.assert_allclose(got[:, 0], fake["images"].reshape(4, -1).mean(1) / 255.0, rtol=1e-5)
    assert got.shape == (4, 3)
