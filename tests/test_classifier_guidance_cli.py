"""Classifier guidance on the command line: --classifier_path / --classifier_scale with
--class_label in denoise, sequence and eval, and every refusal (exit 2, one line).

The refusals use real files: ppddpm inference files of networks that are not classifiers
of the right shape. ADM's noisy classifier (arch adm_classifier) is not in this branch, so
the runs that sample swap the file's network for a paddle Layer with known logits through
``pipeline.load_pretrained`` (the one call that reads a classifier file,
tests/helpers_classifier.py); the rest of the path (checks, labels, sampling, outputs) is
the real one."""
import json
import os

import numpy as np
import paddle
import pytest

from helpers_classifier import net_config, reading_classifier
from helpers_cli import ROOT, run
from helpers_data import make_fake_cifar10
from ppddpm import pipeline
from ppddpm.cli import main
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.data.labels import random_labels
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.models import build_model
from ppddpm.samplers.classifier_guidance import ClassifierGuidance

T = 10
YAML = f"""\
base: {ROOT}/configs/cifar10.yaml
diffusion: {{num_diffusion_steps: {T}, beta_end: 0.2}}
data: {{num_workers: 0, download: false}}
sample: {{batchsize: 4}}
"""


def write_net(path, **kw):
    cfg = net_config(**kw)
    paddle.seed(0)
    net = build_model(cfg.model)
    save_inference_file(str(path), net.state_dict(), GaussianDiffusion.from_config(
        cfg.diffusion).betas, {}, cfg)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf")
    (d / "tiny.yaml").write_text(YAML)
    (d / "garbage.pdparam").write_bytes(os.urandom(300))
    (d / "brightness.pdparam").write_bytes(b"stands for the classifier below")
    return {"dir": d,
            "uncond": write_net(d / "uncond.pdparam"),
            "cond10": write_net(d / "cond10.pdparam", num_classes=10),
            "cond5": write_net(d / "cond5.pdparam", num_classes=5),
            "cond10_16": write_net(d / "cond10_16.pdparam", resolution=16, num_classes=10)}


@pytest.fixture
def cli(files, monkeypatch, capsys):
    """``cli(*argv) -> (status, stderr)`` in-process, with brightness.pdparam read as
    BrightnessClassifier (8x8 RGB, 10 classes)."""
    monkeypatch.chdir(files["dir"])
    load = reading_classifier(pipeline.load_pretrained, resolution=8)
    monkeypatch.setattr(pipeline, "load_pretrained", load)

    def call(*argv):
        status = main("tiny.yaml", "test", argv=list(argv) + ["--quiet"])
        return status, capsys.readouterr().err
    call.classifier = load.classifier
    return call


def one_line_error(status, err, *words):
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


def test_scale_without_a_classifier_and_a_garbage_file_exit_2_from_the_run_script(files):
    d = files["dir"]
    for args, words in [(["--classifier_scale", "2"], ["--classifier_scale", "--classifier_path"]),
                        (["--classifier_path", "garbage.pdparam"], ["--classifier_path",
                                                                    "garbage.pdparam"])]:
        proc = run("run_cifar10.py", "--config", "tiny.yaml", "--mode", "denoise",
                   "--pretrained_path", files["uncond"], *args, cwd=d, expect=2)
        one_line_error(2, proc.stderr, *words)


@pytest.mark.parametrize("model, args, words", [
    ("uncond", ["--classifier_path", "missing.pdparam"], ["missing.pdparam", "does not exist"]),
    ("uncond", ["--classifier_path", "uncond.pdparam"], ["without classes", "not a classifier"]),
    ("uncond", ["--classifier_path", "cond10.pdparam"], ["[1, 3, 8, 8]", "logits [1, 10]"]),
    ("uncond", ["--classifier_path", "cond10_16.pdparam"], ["3x16x16", "3x8x8"]),
    ("cond10", ["--classifier_path", "cond5.pdparam"], ["5 classes", "has 10"]),
    ("uncond", ["--classifier_path", "brightness.pdparam", "--classifier_scale", "-1"],
     ["--classifier_scale", ">= 0"]),
    ("uncond", ["--classifier_path", "brightness.pdparam", "--guidance_scale", "1"],
     ["--guidance_scale", "unconditional"]),
    ("uncond", ["--classifier_path", "brightness.pdparam", "--class_label", "12"],
     ["--class_label '12'", "0..9"]),
])
def test_refusals(files, cli, model, args, words):
    one_line_error(*cli("--mode", "denoise", "--pretrained_path", files[model], *args), *words)


def npz(files, postfix):
    return np.load(files["dir"] / "sample" / f"{postfix}.npz")["arr_0"].astype(np.float64)


def test_denoise_pulls_each_row_towards_its_class(files, cli):
    base = ("--mode", "denoise", "--pretrained_path", files["uncond"], "--num_images", "8-2-4",
            "--save_npz", "True")
    assert cli(*base, "--sample_postfix", "plain")[0] == 0
    status, err = cli(*base, "--classifier_path", "brightness.pdparam", "--classifier_scale",
                      "50", "--class_label", "0,9", "--sample_postfix", "guided")
    assert status == 0, err
    assert cli.classifier.calls == 1 + 2 * T   # the probe, then one per DDPM step of 2 batches
    plain, guided = npz(files, "plain"), npz(files, "guided")
    # rows 0 (class 0) and 1 (class 9) from the same noise as the plain run: darker, brighter
    assert guided[:4].mean() < plain[:4].mean() - 20
    assert guided[4:].mean() > plain[4:].mean() + 20
    # a scale of 0 is the unguided sampler
    assert cli(*base, "--classifier_path", "brightness.pdparam", "--classifier_scale", "0",
               "--class_label", "0,9", "--sample_postfix", "zero")[0] == 0
    np.testing.assert_array_equal(npz(files, "zero"), plain)


def test_ddim_sequence_and_random_classes(files, cli, monkeypatch):
    """A class-conditional model without --class_label: random classes, as guided-diffusion
    draws them, for the network and the classifier alike."""
    import ppddpm.cli.denoise as denoise
    real, seen = denoise.generate_sequence, {}

    def recording(*a, **kw):
        seen.update(kw)
        return real(*a, **kw)
    monkeypatch.setattr(denoise, "generate_sequence", recording)
    status, err = cli("--mode", "denoise", "--pretrained_path", files["cond10"], "--sampler",
                      "ddim", "--ddim_steps", "5", "--classifier_path", "brightness.pdparam",
                      "--num_images", "2-1-2", "--sequence", "True", "--sample_postfix", "seq")
    assert status == 0, err
    assert cli.classifier.calls == 1 + 5
    written = os.listdir(files["dir"] / "sample")
    assert {"sample_seq.gif", "sample_seq.png", "sample_seq_xt.png"} <= set(written), written
    np.testing.assert_array_equal(seen["labels"], random_labels(0, 2, 10))
    assert isinstance(seen["classifier"], ClassifierGuidance) and seen["classifier"].scale == 1


def test_eval_samples_with_the_classifier_and_records_it(files, cli, monkeypatch):
    d = files["dir"]
    make_fake_cifar10(str(d / "ds"), 1)
    (d / "inception.pth").write_bytes(b"not weights")   # fails only after the samples are saved
    captured = {}
    import ppddpm.samplers.batched as batched
    real = batched.generate

    def recording(*a, **kw):
        captured.setdefault("labels", []).extend(kw["labels"].tolist())
        assert isinstance(kw["classifier"], ClassifierGuidance) and kw["classifier"].scale == 3
        return real(*a, **kw)
    monkeypatch.setattr(batched, "generate", recording)
    status, err = cli("--mode", "eval", "--pretrained_path", files["uncond"], "--data_dir", "ds",
                      "--num_samples", "6", "--inception_weights", "inception.pth",
                      "--engine", "dygraph", "--classifier_path", "brightness.pdparam",
                      "--classifier_scale", "3", "--sample_postfix", "ev")
    assert status == 2 and "inception.pth" in err, err
    assert cli.classifier.calls > 0
    assert len(captured["labels"]) == 6 and all(0 <= k < 10 for k in captured["labels"])
    with np.load(d / "sample" / "ev_eval6.npz") as f:
        meta = json.loads(str(f["ppddpm_meta"]))
    assert meta["classifier_scale"] == 3 and meta["classifier_path"].endswith("brightness.pdparam")


def test_train_and_bpd_refuse_a_classifier_instead_of_ignoring_it(files, cli):
    one_line_error(*cli("--mode", "train", "--classifier_path", "brightness.pdparam"),
                   "--classifier_path", "--mode denoise")
    one_line_error(*cli("--mode", "eval", "--metrics", "bpd", "--pretrained_path",
                        files["uncond"], "--classifier_path", "brightness.pdparam"),
                   "--classifier_path", "bpd")


def test_eval_of_two_classes_keeps_both_runs_files(files, cli):
    """Without --sample_postfix, eval's samples carry their classes in their name, as
    denoise's grids do: a class-5 eval neither reuses nor overwrites the class-3 one's."""
    d = files["dir"]
    make_fake_cifar10(str(d / "ds"), 1)
    (d / "inception.pth").write_bytes(b"not weights")   # fails only after the samples are saved
    for label in ("3", "5"):
        status, err = cli("--mode", "eval", "--pretrained_path", files["cond10"], "--data_dir",
                          "ds", "--num_samples", "4", "--inception_weights", "inception.pth",
                          "--engine", "dygraph", "--class_label", label)
        assert status == 2 and "inception.pth" in err, err
    names = sorted(p.name for p in (d / "sample").glob("*_eval4.npz"))
    assert [n for n in names if "_class3_" in n] and [n for n in names if "_class5_" in n], names
    for name in names:
        with np.load(d / "sample" / name) as f:
            meta = json.loads(str(f["ppddpm_meta"]))
        assert meta["classes"] == [int(name.split("_class")[1][0])], (name, meta)
