"""End to end on the command line: converted improved-diffusion and guided-diffusion files
(from .pt files of upstream's layout written here) sample grids with run_cifar10.py, a
conditional one with --class_label; a classifier or a label the model lacks is one line."""
import numpy as np
import pytest
from PIL import Image

from helpers_adm import case_shapes, load_fixture
from helpers_cli import grid_size, run
from helpers_inception import write_pth
from legacy_weights import fill_weights
from ppddpm.config import Config, validate
from ppddpm.convert.__main__ import main as convert_main
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.diffusion import get_beta_schedule
from ppddpm.models import build_model
from test_convert_mmgen import write_mmgen_checkpoint

_, META = load_fixture()


def converted(tmp_path, name, family, ext="pdparam"):
    src = tmp_path / f"{name}.pt"
    write_pth(str(src), fill_weights([(k, tuple(s)) for k, s in case_shapes(META, name)]))
    case = META["flag_cases"].get(name) or META["flag_classifiers"][name]
    out = tmp_path / f"{name}.{ext}"
    assert convert_main(["--from", family, "--src", str(src), "--flags", case["flags"],
                         "--out", str(out)]) == 0
    return str(out)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("adm_cli")
    write_mmgen_checkpoint(d / "mmgen.pth")
    assert convert_main(["--from", "mmgen", "--src", str(d / "mmgen.pth"), "--out",
                         str(d / "mmgen.pdparam")]) == 0
    return d, {"mmgen": str(d / "mmgen.pdparam"),
               "improved": converted(d, "improved_cifar10", "improved-diffusion"),
               "guided": converted(d, "guided_64", "guided-diffusion", "safetensors"),
               "classifier": converted(d, "classifier_64", "guided-diffusion")}


def grid(path):
    with Image.open(path) as im:
        return im.size, np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("family", ["improved", "mmgen"])
def test_improved_diffusion_and_mmgen_files_sample_a_grid_with_ddim(files, family):
    d, f = files
    run("run_cifar10.py", "--mode", "denoise", "--pretrained_path", f[family],
        "--sampler", "ddim", "--ddim_steps", "5", "--num_images", "4-2-2",
        "--sample_postfix", family, cwd=d)
    size, pixels = grid(d / "sample" / f"sample_{family}.png")
    assert size == grid_size(2, 2) and pixels.std() > 10


def test_guided_conditional_file_samples_the_given_classes_with_learned_variances(files):
    """DDPM on 10 respaced steps: the learned-range variance comes out of the network."""
    d, f = files
    run("run_cifar10.py", "--mode", "denoise", "--pretrained_path", f["guided"],
        "--respacing", "10", "--class_label", "3,999", "--num_images", "4-2-2",
        "--sample_postfix", "guided", cwd=d)
    size, pixels = grid(d / "sample" / "sample_guided.png")
    assert size == grid_size(2, 2) and pixels.std() > 10


def test_a_classifier_or_a_missing_class_is_one_line(files):
    d, f = files
    proc = run("run_cifar10.py", "--mode", "denoise", "--pretrained_path", f["classifier"],
               "--num_images", "4-2-2", cwd=d, expect=2)
    assert proc.stderr.strip().count("\n") == 0 and "is a noisy classifier" in proc.stderr
    proc = run("run_cifar10.py", "--mode", "denoise", "--pretrained_path", f["improved"],
               "--class_label", "3", "--num_images", "4-2-2", cwd=d, expect=2)
    assert proc.stderr.startswith("error: --class_label 3 needs a class-conditional model")
    assert "Traceback" not in proc.stderr


def adm_classifier_file(path, resolution=32, num_classes=1000):
    """A noisy classifier of guided-diffusion's family (arch adm_classifier, attention pool) with
    every weight random, saved as the converter saves one."""
    cfg = Config()
    m = cfg.model
    m.arch, m.ch, m.ch_mult, m.num_res_blocks = "adm_classifier", 32, [1, 2], 1
    m.attn_resolutions, m.resolution, m.num_classes = [resolution // 2], resolution, num_classes
    m.num_head_channels, m.use_scale_shift_norm, m.resblock_updown = 32, True, True
    cfg.data.image_size = resolution
    validate(cfg)
    net = build_model(cfg.model)
    state = fill_weights([(k, tuple(v.shape)) for k, v in net.state_dict().items()])
    d = cfg.diffusion
    save_inference_file(str(path), state, get_beta_schedule(d.beta_schedule, d.num_diffusion_steps,
                                                            d.beta_start, d.beta_end), {}, cfg)
    return str(path)


def test_classifier_guidance_with_an_adm_classifier_file(files):
    """Dhariwal & Nichol's set-up end to end: an ADM conditional model guided by an ADM noisy
    classifier file. Scale 0 gives the unguided images exactly; scale 1 moves them."""
    d, f = files
    clf = adm_classifier_file(d / "classifier_32.pdparam")
    base = ["--mode", "denoise", "--pretrained_path", f["guided"], "--respacing", "5",
            "--num_images", "2-2-1", "--engine", "dygraph"]
    run("run_cifar10.py", *base, "--class_label", "3,999", "--sample_postfix", "plain", cwd=d)
    for scale in ("0", "1"):
        proc = run("run_cifar10.py", *base, "--class_label", "3,999", "--classifier_path", clf,
                   "--classifier_scale", scale, "--sample_postfix", f"cg{scale}", cwd=d,
                   quiet=False)
        assert f"classifier guidance {scale} (" in proc.stdout
    plain, cg0, cg1 = (grid(d / "sample" / f"sample_{p}.png")[1] for p in ("plain", "cg0", "cg1"))
    np.testing.assert_array_equal(cg0, plain)
    assert (cg1 != plain).any()   # (by how much is the closed-form tests' part)
    # (random classes and a classifier of another resolution: test_classifier_guidance_cli.py)
