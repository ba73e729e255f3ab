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
from ppddpm.convert.__main__ import main as convert_main
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
