import os

import numpy as np
import paddle
import pytest
from PIL import Image

from ppddpm.config import ConfigError, parse_num_images
from ppddpm.errors import PPDDPMError
from ppddpm.io.files import atomic_write
from ppddpm.io.images import (grid_size, make_grid, save_grid, save_individual, save_npz,
                              save_sequence, to_uint8)


def _known_batch(n=2, h=3, w=4):
    """uint8 NCHW with every value 0..255 appearing, and its [-1,1] float version."""
    v = (np.arange(n * 3 * h * w) * 7 % 256).astype(np.uint8).reshape(n, 3, h, w)
    return v, v.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def test_to_uint8_inverts_data_scaling_exactly_for_all_levels():
    v = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    x = v.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    out = to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 16, 16, 1)
    np.testing.assert_array_equal(out[..., 0], v[:, 0])


def test_to_uint8_layout_clip_tensor_and_nan():
    v, x = _known_batch()
    out = to_uint8(x)
    assert out.shape == (2, 3, 4, 3)
    assert out[1, 2, 3, 0] == v[1, 0, 2, 3] and out[0, 1, 2, 2] == v[0, 2, 1, 2]
    np.testing.assert_array_equal(to_uint8(paddle.to_tensor(x)), out)
    edge = np.array([-3.0, -1.0, 0.0, 1.0, 5.0, np.nan], np.float32).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(to_uint8(edge)[0, 0, :, 0], [0, 0, 128, 255, 255, 128])
    # round half up: (x+1)*127.5 = 10.5 -> 11, 10.49 -> 10
    x = np.array([10.5, 10.49]) / 127.5 - 1.0
    np.testing.assert_array_equal(to_uint8(x.reshape(1, 1, 1, 2))[0, 0, :, 0], [11, 10])
    assert to_uint8(x.reshape(1, 1, 2)).shape == (1, 2, 1)      # CHW -> HWC


@pytest.mark.parametrize("spec,expected", [("400-20-20", (400, 20, 20)),
                                           (" 64-8-8 ", (64, 8, 8)), ("3-1-3", (3, 1, 3))])
def test_parse_num_images_ok(spec, expected):
    assert parse_num_images(spec) == expected


@pytest.mark.parametrize("spec,needle", [("10-3-3", "R*C=3*3=9"), ("64-8", "N-R-C"),
                                         ("a-b-c", "N-R-C"), ("64-8-8-1", "N-R-C"),
                                         ("0-0-0", ">= 1"), ("", "N-R-C")])
def test_parse_num_images_errors(spec, needle):
    with pytest.raises(ConfigError) as err:
        parse_num_images(spec)
    assert needle in str(err.value) and isinstance(err.value, PPDDPMError)


def test_make_grid_layout_pixel_positions():
    imgs = np.stack([np.full((3, 4, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    imgs[:, 0, 0] = 1                       # mark each tile's top-left pixel
    grid = make_grid(imgs, nrow=2, ncol=3, padding=2)
    assert grid.shape == (2 * 5 + 2, 3 * 6 + 2, 3) == grid_size(2, 3, 3, 4) + (3,)
    covered = np.zeros(grid.shape[:2], bool)
    for i in range(5):
        top, left = 2 + (i // 3) * 5, 2 + (i % 3) * 6
        np.testing.assert_array_equal(grid[top:top + 3, left:left + 4], imgs[i])
        covered[top:top + 3, left:left + 4] = True
    assert (grid[~covered] == 255).all()     # borders around/between and the empty 6th cell
    assert covered.sum() == 5 * 12


def test_make_grid_rejects_too_many_and_wrong_channels():
    with pytest.raises(ValueError):
        make_grid(np.zeros((5, 2, 2, 3), np.uint8), 2, 2)
    with pytest.raises(ValueError):
        make_grid(np.zeros((1, 2, 2, 2), np.uint8), 1, 1)


def test_save_grid_png_roundtrip_and_float_input(tmp_path):
    v, x = _known_batch(n=4)
    path = save_grid(x, str(tmp_path / "s" / "sample.png"), 2, 2)
    got = np.asarray(Image.open(path))
    np.testing.assert_array_equal(got, make_grid(v.transpose(0, 2, 3, 1), 2, 2))
    assert os.listdir(tmp_path / "s") == ["sample.png"]          # no temp file left


def test_save_individual_names_and_content(tmp_path):
    v, _ = _known_batch(n=3)
    nhwc = v.transpose(0, 2, 3, 1).copy()
    paths = save_individual(nhwc, str(tmp_path / "ind"), start_index=7)
    assert [os.path.basename(p) for p in paths] == ["000007.png", "000008.png", "000009.png"]
    for p, img in zip(paths, nhwc):
        np.testing.assert_array_equal(np.asarray(Image.open(p)), img)
    one = save_individual(np.zeros((1, 2, 2, 1), np.uint8), str(tmp_path / "g"))
    assert Image.open(one[0]).mode == "L"


def test_save_npz_contents(tmp_path):
    v, x = _known_batch(n=3)
    path = save_npz(x, str(tmp_path / "samples.npz"))
    with np.load(path) as data:
        assert data.files == ["arr_0"]
        assert data["arr_0"].dtype == np.uint8
        np.testing.assert_array_equal(data["arr_0"], v.transpose(0, 2, 3, 1))


def test_save_sequence_grid_and_gif(tmp_path):
    n, t, h, w = 3, 4, 5, 5
    colours = np.array([[10 * (a + 1), 60 * b, 200 - 30 * a] for a in range(n) for b in range(t)],
                       np.uint8).reshape(n, t, 3)
    frames = [np.broadcast_to(colours[:, k, None, None, :], (n, h, w, 3)).copy() for k in range(t)]
    png, gif = str(tmp_path / "seq.png"), str(tmp_path / "seq.gif")
    save_sequence(frames, png, gif_path=gif, frame_ms=100, hold_ms=2000)
    grid = np.asarray(Image.open(png))
    assert grid.shape == (n * (h + 2) + 2, t * (w + 2) + 2, 3)
    for a in range(n):              # row = image, column = time
        for b in range(t):
            top, left = 2 + a * (h + 2), 2 + b * (w + 2)
            np.testing.assert_array_equal(grid[top:top + h, left:left + w], frames[b][a])
    im = Image.open(gif)
    assert im.n_frames == t
    durations = []
    for k in range(t):
        im.seek(k)
        durations.append(im.info["duration"])
        got = np.asarray(im.convert("RGB"))
        np.testing.assert_array_equal(got, make_grid(frames[k], 2, 2))   # 3 images -> 2x2
    assert durations == [100, 100, 100, 2000]


def test_save_sequence_rejects_mixed_shapes(tmp_path):
    with pytest.raises(ValueError):
        save_sequence([np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 5, 4, 3), np.uint8)],
                      str(tmp_path / "x.png"))


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sample.png"
    path.write_bytes(b"old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        atomic_write(str(path), boom)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["sample.png"]
