"""--mode encode | interpolate | img2img | inpaint on the command line, with a tiny 8x8 grey
network: what each writes, the exact identities that tie them to --mode denoise (SDEdit at
strength 1 and interpolation's end frames are plain DDIM samples of the same seed; strength 0
and RePaint's known pixels give back the input), two ranks giving one rank's images, and every
refusal as one line with status 2."""
import os

import numpy as np
import paddle
import pytest
from PIL import Image

from dist_workers import denoise as main_in_spawned_process
from helpers_cli import ROOT, run
from ppddpm.cli import main
from ppddpm.config import apply_overrides, load_config
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.models import build_model

TINY_MODEL = ["model.ch=8", "model.ch_mult=[1,2]", "model.num_res_blocks=1",
              "model.attn_resolutions=[]", "model.norm_groups=4", "model.resolution=8",
              "data.image_size=8", "diffusion.num_diffusion_steps=20", "diffusion.beta_end=0.5"]
DDIM = ["--sampler", "ddim", "--steps", "5"]


def tile(path, row, col, size=8, pad=2):
    grid = np.asarray(Image.open(path))
    top, left = pad + row * (size + pad), pad + col * (size + pad)
    return grid[top:top + size, left:left + size]


def grey_png(path, seed, size=(8, 8), mode="L"):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("edit")
    cfg = load_config(os.path.join(ROOT, "configs", "mnist.yaml"))
    apply_overrides(cfg, TINY_MODEL)
    paddle.seed(0)
    net = build_model(cfg.model)
    for p in net.parameters():   # non-zero output layers: the images depend on the net
        p.set_value(paddle.randn(p.shape) * 0.05)
    weights = d / "tiny.pdparam"
    save_inference_file(str(weights), net.state_dict(),
                        GaussianDiffusion.from_config(cfg.diffusion).betas, {}, cfg)
    (d / "digits").mkdir()
    images = [grey_png(d / "digits" / f"{i}.png", i) for i in range(3)]
    mask = np.full((8, 8), 255, np.uint8)
    mask[:, 4:] = 0                                   # keep the left half
    Image.fromarray(mask, "L").save(d / "mask.png")
    grey_png(d / "rgb.png", 9, mode="RGB")
    grey_png(d / "big.png", 9, size=(10, 8))
    return {"dir": d, "weights": str(weights), "images": images, "mask": str(d / "mask.png")}


def cli(files, mode, *args, expect=0, quiet=True):
    """run_mnist.py as a subprocess (the script itself, its exit status and output)."""
    return run("run_mnist.py", "--mode", mode, "--pretrained_path", files["weights"],
               "--engine", "dygraph", "--batchsize", "2", "--sample_dir", "out", *args,
               cwd=files["dir"], expect=expect, quiet=quiet)


def call(files, mode, *args):
    """The script's ppddpm.cli.main in-process, from the files' folder (where the process
    is not the point: the files written are)."""
    cwd = os.getcwd()
    os.chdir(files["dir"])
    try:
        status = main(os.path.join(ROOT, "configs", "mnist.yaml"), "test",
                      argv=["--mode", mode, "--pretrained_path", files["weights"], "--engine",
                            "dygraph", "--batchsize", "2", "--sample_dir", "out", *args,
                            "--quiet"])
    finally:
        os.chdir(cwd)
    assert status == 0


@pytest.fixture(scope="module")
def plain_sample(files):
    """Image 0 of seed 3 drawn by --mode denoise with DDIM, 5 steps."""
    call(files, "denoise", *DDIM, "--sample_seed", "3", "--num_images", "1-1-1",
        "--sample_postfix", "plain")
    return tile(files["dir"] / "out" / "sample_plain.png", 0, 0)


def test_encode_writes_latents_names_and_the_reconstruction_error(files):
    proc = cli(files, "encode", "--init_image", str(files["dir"] / "digits"), "--steps", "5",
               quiet=False)
    with np.load(files["dir"] / "out" / "encode_ddim_mnist_test.npz") as f:
        assert f["latents"].shape == (3, 1, 8, 8) and f["latents"].dtype == np.float32
        assert list(f["names"]) == ["0.png", "1.png", "2.png"] and int(f["steps"]) == 5
        rmse = f["reconstruction_rmse"]
    assert rmse.shape == (3,) and np.all(np.isfinite(rmse)) and f"RMSE {rmse.mean():.4f}" in proc.stdout
    first_input = np.asarray(Image.open(files["images"][0]))
    np.testing.assert_array_equal(tile(files["dir"] / "out" / "encode_ddim_mnist_test.png", 0, 0),
                                  first_input)
    assert not os.path.exists(files["dir"] / "out" / "encode_ddim_mnist_test.partial")


def test_interpolation_ends_are_the_seeds_plain_samples(files, plain_sample):
    call(files, "interpolate", "--steps", "5", "--endpoints", "3,7", "--frames", "4",
         "--batchsize", "1",   # the plain sample's batch: the same kernels, the same bits
         "--clip_denoised", "True")   # as denoise (interpolate's default leaves x0 unclipped)
    strip = files["dir"] / "out" / "interpolate_ddim_mnist_test.png"
    assert Image.open(strip).size == (4 * 10 + 2, 12)
    np.testing.assert_array_equal(tile(strip, 0, 0), plain_sample)
    assert Image.open(files["dir"] / "out" / "interpolate_ddim_mnist_test.gif").n_frames == 4


def test_img2img_strength_one_is_the_plain_sample_and_zero_the_input(files, plain_sample):
    one = files["images"][0]
    call(files, "img2img", *DDIM, "--init_image", one, "--strength", "1", "--sample_seed", "3",
        "--batchsize", "1")
    grid = files["dir"] / "out" / "img2img_ddim_mnist_test_s1.png"
    np.testing.assert_array_equal(tile(grid, 1, 0), plain_sample)
    call(files, "img2img", "--init_image", str(files["dir"] / "digits"), "--strength", "0",
        "--save_npz", "True")
    with np.load(files["dir"] / "out" / "img2img_ddpm_mnist_test_s0.npz") as f:
        out = f["arr_0"][..., 0]
    np.testing.assert_array_equal(out, np.stack([np.asarray(Image.open(p)) for p in files["images"]]))


def test_inpaint_keeps_the_known_pixels_and_fills_the_rest(files):
    call(files, "inpaint", "--init_image", str(files["dir"] / "digits"), "--mask", files["mask"],
        "--jump_length", "5", "--jump_n_sample", "2", "--save_individual", "True")
    grid = files["dir"] / "out" / "inpaint_ddpm_mnist_test.png"
    assert Image.open(grid).size == (3 * 10 + 2, 3 * 10 + 2)   # input, masked input, result
    for i, path in enumerate(files["images"]):
        given = np.asarray(Image.open(path))
        result = np.asarray(Image.open(files["dir"] / "out" / "inpaint_ddpm_mnist_test" / f"{i:06d}.png"))
        np.testing.assert_array_equal(result[:, :4], given[:, :4])
        assert not np.array_equal(result[:, 4:], given[:, 4:])
        np.testing.assert_array_equal(tile(grid, 2, i), result)


def test_two_ranks_give_the_single_process_images(files, tmp_path):
    common = ["--mode", "img2img", "--pretrained_path", files["weights"], "--engine", "dygraph",
              "--init_image", str(files["dir"] / "digits"), "--strength", "0.6",
              "--batchsize", "1", "--save_npz", "True", "--quiet"]
    paddle.distributed.spawn(main_in_spawned_process, nprocs=2, backend="gloo",
                             args=(common + ["--sample_dir", str(tmp_path / "two")],))
    main_in_spawned_process(common + ["--sample_dir", str(tmp_path / "one")])
    two = np.load(tmp_path / "two" / "img2img_ddpm_cifar10_test_s0.6.npz")["arr_0"]
    one = np.load(tmp_path / "one" / "img2img_ddpm_cifar10_test_s0.6.npz")["arr_0"]
    assert two.shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(two, one)


def test_an_error_is_one_line_with_status_2(files):
    proc = cli(files, "inpaint", "--init_image", files["images"][0], "--mask",
               str(files["dir"] / "big.png"), expect=2)
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "--mask" in proc.stderr and "10x8" in proc.stderr and "8x8" in proc.stderr


ERRORS = [
    (["--mode", "inpaint", "--init_image", "digits/0.png", "--mask", "big.png"],
     "is 10x8 pixels, but the model makes 8x8"),
    (["--mode", "img2img", "--init_image", "rgb.png"], "has 3 (RGB) channels, but the model makes images of 1 (grey)"),
    (["--mode", "img2img", "--init_image", "big.png"], "resize or crop it to 8x8"),
    (["--mode", "img2img", "--init_image", "digits/0.png", "--strength", "1.5"],
     "--strength / sample.strength must be in [0, 1], got 1.5"),
    (["--mode", "img2img", "--init_image", "nothing.png"], "'nothing.png' does not exist"),
    (["--mode", "img2img"], "--mode img2img needs --init_image"),
    (["--mode", "inpaint", "--init_image", "digits"], "--mode inpaint needs --mask"),
    (["--mode", "inpaint", "--init_image", "digits", "--mask", "nothing.png"],
     "--mask 'nothing.png' does not exist"),
    (["--mode", "inpaint", "--init_image", "digits", "--mask", "digits/0.png",
      "--jump_length", "0"], "--jump_length / sample.jump_length must be >= 1"),
    (["--mode", "encode", "--init_image", "digits", "--sampler", "ddpm"],
     "--mode encode runs the deterministic DDIM ODE, not --sampler ddpm"),
    (["--mode", "encode", "--init_image", "digits", "--eta", "1"], "must be 0, got 1"),
    (["--mode", "interpolate", "--endpoints", "3"], "--endpoints '3' must name two ends"),
    (["--mode", "interpolate", "--endpoints", "3,rgb.png"], "'rgb.png' has 3 (RGB) channels"),
    (["--mode", "interpolate", "--frames", "1"], "sample.interp_frames must be >= 2"),
    (["--mode", "img2img", "--init_image", "digits", "--mask", "mask.png"],
     "--mask mask.png is not read by --mode img2img; it is for --mode inpaint"),
    (["--mode", "denoise", "--strength", "0.5"], "--strength 0.5 is not read by --mode denoise"),
    (["--mode", "img2img", "--init_image", "digits", "--class_label", "3"],
     "needs a class-conditional model"),
]


@pytest.mark.parametrize("argv,message", ERRORS, ids=[" ".join(a[:2] + a[-2:]) for a, _ in ERRORS])
def test_refusals(files, monkeypatch, capsys, argv, message):
    """The same code path as the script (ppddpm.cli.main), in-process: each refusal is
    status 2 and one line."""
    monkeypatch.chdir(files["dir"])
    status = main(os.path.join(ROOT, "configs", "mnist.yaml"), "test",
                  argv=argv + ["--pretrained_path", files["weights"], "--engine", "dygraph",
                               "--sample_dir", "out", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err, err


def test_the_exported_engine_edits_like_the_dynamic_graph(files):
    """--engine inference (the network exported for Paddle Inference) in img2img: the
    images of the dynamic graph, to float32 rounding."""
    for engine in ("dygraph", "inference"):
        call(files, "img2img", *DDIM, "--init_image", str(files["dir"] / "digits"),
             "--strength", "0.7", "--save_npz", "True", "--engine", engine,
             "--sample_postfix", engine)
    dygraph, exported = (np.load(files["dir"] / "out" / f"img2img_{e}_s0.7.npz")["arr_0"]
                         for e in ("dygraph", "inference"))
    diff = np.abs(dygraph.astype(int) - exported.astype(int))
    assert diff.max() <= 1 and dygraph.std() > 10, diff.max()


@pytest.fixture(scope="module")
def conditional(files):
    """A class-conditional tiny network (10 classes) beside the unconditional one."""
    cfg = load_config(os.path.join(ROOT, "configs", "mnist.yaml"))
    apply_overrides(cfg, TINY_MODEL + ["model.num_classes=10"])
    paddle.seed(1)
    net = build_model(cfg.model)
    for p in net.parameters():
        p.set_value(paddle.randn(p.shape) * 0.05)
    path = files["dir"] / "cond.pdparam"
    save_inference_file(str(path), net.state_dict(),
                        GaussianDiffusion.from_config(cfg.diffusion).betas, {}, cfg)
    return dict(files, weights=str(path))


def test_labels_and_guidance_reach_the_edit(conditional):
    """SDEdit at strength 1 of a conditional model with --class_label and classifier-free
    guidance is --mode denoise's image of that class and guidance; another class differs."""
    guided = ["--class_label", "4", "--guidance_scale", "2", "--sample_seed", "5"]
    call(conditional, "denoise", *DDIM, *guided, "--num_images", "1-1-1", "--sample_postfix",
         "cond_plain")
    call(conditional, "img2img", *DDIM, *guided, "--init_image", conditional["images"][0],
         "--strength", "1", "--batchsize", "1", "--sample_postfix", "cond")
    plain = tile(conditional["dir"] / "out" / "sample_cond_plain.png", 0, 0)
    np.testing.assert_array_equal(tile(conditional["dir"] / "out" / "img2img_cond_s1.png", 1, 0),
                                  plain)
    call(conditional, "img2img", *DDIM, "--class_label", "7", "--guidance_scale", "2",
         "--sample_seed", "5", "--init_image", conditional["images"][0], "--strength", "1",
         "--sample_postfix", "cond7")
    assert not np.array_equal(tile(conditional["dir"] / "out" / "img2img_cond7_s1.png", 1, 0),
                              plain)


def test_edits_of_two_classes_keep_their_own_files(conditional):
    """Without --sample_postfix an edit's outputs carry its classes, as denoise's grids do:
    a class-5 run neither overwrites nor resumes a class-3 one."""
    for cls in ("3", "5"):
        call(conditional, "img2img", *DDIM, "--class_label", cls, "--init_image",
             conditional["images"][0], "--strength", "0.4")
    names = sorted(p.name for p in (conditional["dir"] / "out").glob("img2img_*_s0.4.png"))
    assert [n for n in names if "_class3_" in n] and [n for n in names if "_class5_" in n], names
