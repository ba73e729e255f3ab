"""`python -m ppddpm.convert --from improved-diffusion | guided-diffusion`: real .pt files of
upstream's layout (written here without PyTorch, random weights of the parity fixture's
cases) become inference files whose networks give upstream's outputs; flags that disagree
with the weights are named in one line; no PyTorch is needed and no pickled code runs."""
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import paddle
import pytest

from helpers_adm import case_shapes, load_fixture
from helpers_cli import ROOT
from helpers_inception import write_pth
from legacy_weights import fill_weights
from test_convert_mmgen import write_mmgen_checkpoint
from ppddpm import load_pretrained
from ppddpm.convert.__main__ import main as convert_main
from ppddpm.convert.adm_flags import flags_config, parse_flags
from ppddpm.diffusion.respace import respace

DATA, META = load_fixture()


def upstream_pt(path, name, dtype=np.float32):
    state = fill_weights([(k, tuple(s)) for k, s in case_shapes(META, name)])
    write_pth(str(path), {k: v.astype(dtype) for k, v in state.items()})
    return str(path)


def flags_of(name):
    return (META["flag_cases"].get(name) or META["flag_classifiers"][name])["flags"]


def convert(*args, env=None, code=None):
    cmd = [sys.executable, "-m", "ppddpm.convert", *args] if code is None else \
        [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", **(env or {})))


def close(got, want, rtol=1e-5):
    err = np.abs(np.asarray(got) - want).max() / np.abs(want).max()
    assert err <= rtol, err


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each flag case converted once, to .pdparam (models) or .safetensors (classifier)."""
    d = tmp_path_factory.mktemp("adm")
    out = {}
    for name, family, ext in (("improved_cifar10", "improved-diffusion", "pdparam"),
                              ("guided_64", "guided-diffusion", "safetensors"),
                              ("classifier_64", "guided-diffusion", "pdparam")):
        src = upstream_pt(d / f"{name}.pt", name)
        dst = str(d / f"{name}.{ext}")
        proc = convert("--from", family, "--src", src, "--flags", flags_of(name), "--out", dst)
        assert proc.returncode == 0, proc.stderr
        out[name] = dst
    return d, out


def test_improved_cifar10_file_gives_upstreams_p_mean_variance(converted):
    """4000 cosine steps, learned range, rescaled timesteps and the file's ddim50 respacing,
    all from the flags: the converted file's chain is upstream's SpacedDiffusion."""
    model, diffusion, cfg = load_pretrained(converted[1]["improved_cifar10"])
    assert cfg.model.arch == "adm" and cfg.model.rescale_timesteps
    assert cfg.diffusion.num_diffusion_steps == 4000 and cfg.diffusion.var_type == "learned_range"
    assert cfg.diffusion.loss_type == "hybrid" and cfg.sample.respacing == "ddim50"
    name = "improved_cifar10"
    spaced = respace(diffusion, cfg.sample.respacing)
    with paddle.no_grad():
        out = spaced.p_mean_variance(model, paddle.to_tensor(DATA[f"{name}/x"]),
                                     paddle.to_tensor(DATA[f"{name}/pmv_t"]))
    close(out["mean"].numpy(), DATA[f"{name}/pmv_mean"])
    close(out["log_variance"].numpy(), DATA[f"{name}/pmv_log_variance"])


def test_guided_conditional_file_gives_upstreams_output(converted):
    model, _, cfg = load_pretrained(converted[1]["guided_64"])
    assert cfg.model.num_classes == 1000 and cfg.model.use_new_attention_order
    assert cfg.diffusion.loss_type == "mse_vb" and not cfg.model.rescale_timesteps
    name = "guided_64"
    with paddle.no_grad():
        out = model(paddle.to_tensor(DATA[f"{name}/x"]), paddle.to_tensor(DATA[f"{name}/t"]),
                    paddle.to_tensor(DATA[f"{name}/y"])).numpy()
    close(out, DATA[f"{name}/out"])


def test_classifier_file_loads_as_the_classifier_with_its_size_and_classes(converted):
    """The contract classifier guidance relies on: load_pretrained returns the classifier
    first, its config giving the image size and the number of classes."""
    classifier, _, cfg = load_pretrained(converted[1]["classifier_64"])
    assert cfg.model.arch == "adm_classifier"
    assert (cfg.model.resolution, cfg.data.image_size, cfg.model.num_classes) == (64, 64, 1000)
    name = "classifier_64"
    with paddle.no_grad():
        logits = classifier(paddle.to_tensor(DATA[f"{name}/x"]),
                            paddle.to_tensor(DATA[f"{name}/t"])).numpy()
    assert logits.shape == (1, 1000)
    close(logits, DATA[f"{name}/logits"])


def test_fp16_weights_are_stored_in_float32(tmp_path):
    src = upstream_pt(tmp_path / "half.pt", "guided_128", dtype=np.float16)
    dst = str(tmp_path / "half.pdparam")
    flags = flags_of("guided_128") + " --use_fp16 True"
    assert convert_main(["--from", "guided-diffusion", "--src", src, "--flags", flags,
                         "--out", dst]) == 0
    model, _, _ = load_pretrained(dst)
    want = fill_weights([(k, tuple(s)) for k, s in case_shapes(META, "guided_128")])
    got = dict(model.state_dict())
    assert all(str(p.dtype) == "paddle.float32" for p in got.values())
    np.testing.assert_array_equal(got["input_blocks.0.0.weight"].numpy(),
                                  want["input_blocks.0.0.weight"].astype(np.float16).astype(np.float32))


# flag -> (a wrong value, the words of the one-line error)
WRONG = [("--num_channels", "64", "--num_channels 64 does not match the weights"),
         ("--num_res_blocks", "3", "--num_res_blocks 3 does not match"),
         ("--attention_resolutions", "16", "--attention_resolutions 16 does not match"),
         ("--learn_sigma", "False", "--learn_sigma False does not match"),
         ("--class_cond", "False", "--class_cond False does not match"),
         ("--use_scale_shift_norm", "False", "--use_scale_shift_norm False does not match"),
         ("--resblock_updown", "False", "--resblock_updown False does not match"),
         ("--image_size", "64", "--image_size 64 does not match the weights"),
         ("--frobnicate", "1", "--frobnicate is not one of guided-diffusion's model or diffusion flags"),
         ("--learn_sigma", "maybe", "--learn_sigma takes True or False"),
         ("--channel_mult", "0.5,1", "--channel_mult takes comma-separated positive integers"),
         ("--num_channels", "wide", "--num_channels takes an integer"),
         ("--noise_schedule", "sqrt", "--noise_schedule takes linear or cosine")]


def test_flags_that_disagree_with_the_weights_are_one_line_naming_the_flag(tmp_path, capsys):
    """In-process for speed (the command line's main); the first case also as a process."""
    src = upstream_pt(tmp_path / "g.pt", "guided_64")
    base = flags_of("guided_64")
    for flag, value, words in WRONG:
        argv = ["--from", "guided-diffusion", "--src", src, "--flags", f"{base} {flag} {value}",
                "--out", str(tmp_path / "x.pdparam")]
        assert convert_main(argv) == 2, flag
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (flag, lines)
    proc = convert(*argv[:5], f"{base} {WRONG[0][0]} {WRONG[0][1]}", *argv[6:])
    assert proc.returncode == 2 and WRONG[0][2] in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.pdparam").exists()


def test_improved_diffusion_uses_its_own_defaults(tmp_path, capsys):
    """improved-diffusion rescales timesteps and learned sigmas unless told not to; the
    guided-diffusion-only flags are not improved-diffusion's."""
    src = upstream_pt(tmp_path / "i.pt", "improved_cifar10")
    flags = flags_of("improved_cifar10") + " --rescale_timesteps False --rescale_learned_sigmas False"
    assert convert_main(["--from", "improved-diffusion", "--src", src, "--flags", flags,
                         "--out", str(tmp_path / "i.pdparam")]) == 0
    _, _, cfg = load_pretrained(str(tmp_path / "i.pdparam"))
    assert not cfg.model.rescale_timesteps and cfg.diffusion.loss_type == "mse_vb"
    assert convert_main(["--from", "improved-diffusion", "--src", src, "--flags",
                         flags_of("improved_cifar10") + " --resblock_updown True", "--out",
                         str(tmp_path / "j.pdparam")]) == 2
    assert "--resblock_updown is not one of improved-diffusion's" in capsys.readouterr().err


BLOCK_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
try:
    import torch
    raise SystemExit("torch imported")
except ImportError:
    pass
import runpy
sys.argv = ["ppddpm.convert"] + sys.argv[1:]
runpy.run_module("ppddpm.convert", run_name="__main__")
"""


def test_converters_run_where_import_torch_fails(tmp_path):
    write_mmgen_checkpoint(tmp_path / "mmgen.pth")
    for name, family in (("improved_cifar10", "improved-diffusion"),
                         ("classifier_64", "guided-diffusion"), ("mmgen", "mmgen")):
        src = (str(tmp_path / "mmgen.pth") if family == "mmgen"
               else upstream_pt(tmp_path / f"{name}.pt", name))
        flags = [] if family == "mmgen" else ["--flags", flags_of(name)]
        proc = convert("--from", family, "--src", src, *flags, "--out",
                       str(tmp_path / f"{name}.safetensors"), code=BLOCK_TORCH)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert os.path.getsize(tmp_path / f"{name}.safetensors") > 0


def malicious_pt(path, marker):
    """A .pt whose pickle calls os.system to create ``marker`` when unpickled."""
    cmd = f"touch {marker}".encode()
    pkl = (b"\x80\x02cposix\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R.")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", "3\n")
    return str(path)


@pytest.mark.parametrize("family", ["improved-diffusion", "guided-diffusion"])
def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, family):
    marker = tmp_path / "pwned"
    src = malicious_pt(tmp_path / "evil.pt", marker)
    proc = convert("--from", family, "--src", src, "--out", str(tmp_path / "o.pdparam"))
    assert proc.returncode == 2 and "posix.system" in proc.stderr, proc.stderr
    assert not marker.exists()


def readme_rows():
    """(file, --from, flags) of the README's checkpoint table rows that spell out flags."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        for line in fh:
            m = re.match(r"\| `([^`]+)`.*\| `(improved-diffusion|guided-diffusion)`: `([^`]+)` \|", line)
            if m:
                yield m.groups()


def test_every_flag_line_of_the_readme_table_describes_a_buildable_network():
    """Read by the converter's parser into the config of each public file (not built)."""
    rows = {name: (family, flags) for name, family, flags in readme_rows()}
    assert len(rows) == 13
    for name, (family, flags) in rows.items():
        classifier = "classifier" in name
        cfg = flags_config(parse_flags(flags, family, classifier), family, classifier)
        assert cfg.model.arch == ("adm_classifier" if classifier else "adm"), name
    family, flags = rows["512x512_diffusion.pt"]
    m = flags_config(parse_flags(flags, family), family).model
    assert (m.ch, m.ch_mult, m.time_embed_ch) == (128, [1, 2, 2, 4, 4, 8, 8], 256)
    family, flags = rows["64x64_classifier.pt"]
    m = flags_config(parse_flags(flags, family, True), family, True).model
    assert (m.ch, m.num_res_blocks, m.num_head_channels, m.attn_resolutions) == (128, 4, 64, [32, 16, 8])
    family, flags = rows["cifar10_uncond_50M_500K.pt"]
    cfg = flags_config(parse_flags(flags, family), family)
    assert cfg.model.rescale_timesteps and cfg.diffusion.loss_type == "hybrid"
    assert cfg.diffusion.num_diffusion_steps == 4000 and cfg.model.dropout == 0.3
