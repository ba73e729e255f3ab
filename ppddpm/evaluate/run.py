"""``--mode eval`` (FID, IS, precision/recall, KID of a checkpoint or of given samples)
and ``--mode fid_stats`` (reference statistics of the training set), for every run script.

Generation for eval is resumable: each batch is written at once to
``{sample_dir}/{postfix}_eval.partial/{start}-{stop}.npy``; a new run with the same model
and sampler settings generates only the missing indices. Image i depends only on
(seed, i), so the resumed set equals an uninterrupted one. Under paddle.distributed the
missing batches are dealt round-robin to the ranks; rank 0 then measures.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import Config, ConfigError, ModelConfig
from ..errors import CheckpointError
from ..io.files import atomic_write
from ..pipeline import prepare_sampling, run_class_tag, run_labels
from ..runtime import dist
from ..runtime.progress import note, say
from ..samplers import sampler_description
from .likelihood import evaluate_bpd
from .metrics import PUBLISHED_NUM_SAMPLES
from .metrics.features import from_array, inception_features, open_samples
from .metrics.fid import feature_statistics, frechet_distance
from .metrics.inception import file_digest, load_inception
from .metrics.inception_engine import make_inception_runner
from .metrics.inception_score import inception_score
from .metrics.inception_weights import WEIGHTS_FILE, resolve_weights_path
from .metrics.kid import kernel_inception_distance
from .metrics.precision_recall import precision_recall
from .metrics.stats import (check_same_weights, dataset_source, default_stats_path, load_stats,
                            save_stats)
from .resumable import generate_resumable, sampling_meta


@dataclass
class EvalOptions:
    """What ``--mode eval`` and ``--mode fid_stats`` take beyond the Config (the command line
    builds it: cli.eval_options)."""
    pretrained_path: Optional[str] = None
    num_samples: int = PUBLISHED_NUM_SAMPLES
    samples: Optional[str] = None         # evaluate these images instead of generating
    metrics: str = "fid"                  # fid | bpd
    fid_stats: Optional[str] = None
    eval_out: Optional[str] = None
    inception_weights: Optional[str] = None
    inception_batch: int = 50
    engine: str = "auto"
    var_type: Optional[str] = None        # a reverse-process variance replacing the file's
    map_config: Optional[ModelConfig] = None   # the network expected, None: the file's
    quiet: bool = False
    name_classes: bool = True   # the outputs' names carry the classes and guidance (no --sample_postfix)


def checkpoint_iteration(path: str) -> Optional[int]:
    """Training iterations done, read off ppddpm's file names (ckpt_iter_N, _iN_ema)."""
    name = os.path.basename(path)
    m = re.search(r"_ckpt_iter_(\d+)", name) or re.search(r"_i(\d+)(?:_ema)?\.pdparams?$", name)
    return int(m.group(1)) if m else None


def _generate_for_eval(opts: EvalOptions, cfg: Config):
    """(ImageSource or None on other ranks, info dict) from --pretrained_path."""
    if not opts.pretrained_path:
        raise CheckpointError("eval needs --pretrained_path (a checkpoint to generate from) or "
                              "--samples (a folder or .npz of images to evaluate)")
    if opts.num_samples < 1:
        raise ConfigError(f"--num_samples must be >= 1, got {opts.num_samples}")
    setup = _sampling_setup(opts, cfg)
    model, sampler, shape = setup.model, setup.sampler, setup.shape
    n, batch, s = opts.num_samples, cfg.sample.batchsize or cfg.train.batchsize, cfg.sample
    desc = sampler_description(sampler)
    classes, labels = run_labels(s, setup, n, opts.pretrained_path)   # class-balanced
    meta = sampling_meta(opts.pretrained_path, desc, s, shape, classes, setup.classifier)
    if opts.name_classes:   # a class-3 eval never reuses or overwrites a class-5 one's files
        s.sample_postfix += run_class_tag(s, setup)
    base = os.path.join(s.sample_dir, f"{s.sample_postfix}_eval")
    path = f"{base}{n}.npz"
    info = {"checkpoint": opts.pretrained_path,
            "checkpoint_iteration": checkpoint_iteration(opts.pretrained_path),
            "sampler": desc, "sampler_steps": sampler.num_steps, "sample_seed": s.seed,
            "samples": path}
    if classes is not None:
        info.update(class_labels=classes, guidance_scale=s.guidance_scale)
    if setup.classifier is not None:
        info.update(classifier_path=s.classifier_path, classifier_scale=setup.classifier.scale)
    images = _finished_samples(path, meta)
    if images is not None:
        say(f"eval: reusing {path} ({n} samples of these settings)", opts.quiet)
        return from_array(images, path), info
    if setup.warning:
        note(setup.warning)
    say(f"eval: {n} samples from {opts.pretrained_path} with {desc}, batch {batch}", opts.quiet)
    images = generate_resumable(model, sampler, n, shape, batch, s.seed, base + ".partial",
                                meta, progress=not opts.quiet, labels=labels,
                                guidance_scale=s.guidance_scale, classifier=setup.classifier,
                                desc="eval samples")
    if images is None:
        return None, info
    text = json.dumps(meta, sort_keys=True)
    atomic_write(path, lambda fh: np.savez(fh, arr_0=images, ppddpm_meta=np.str_(text)))
    shutil.rmtree(base + ".partial", ignore_errors=True)
    return from_array(images, path), info


def _sampling_setup(opts: EvalOptions, cfg: Config):
    return prepare_sampling(cfg, opts.pretrained_path, engine=opts.engine,
                            var_type=opts.var_type, map_config=opts.map_config)


def _finished_samples(path: str, meta: dict) -> Optional[np.ndarray]:
    """The images of an earlier finished eval with the same settings, else None."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path) as f:
            if "ppddpm_meta" in f.files and json.loads(str(f["ppddpm_meta"])) == meta:
                return f["arr_0"]
    except (OSError, ValueError):
        pass
    return None


# -- metrics ----------------------------------------------------------------------
def compute_metrics(feats: np.ndarray, logits: np.ndarray, ref) -> dict:
    """FID always; IS with >= 10 images; precision/recall and KID when ``ref`` has features."""
    mu, sigma = feature_statistics(feats)
    out = {"fid": frechet_distance(mu, sigma, ref.mu, ref.sigma), "is_mean": None, "is_std": None,
           "precision": None, "recall": None, "kid_mean": None, "kid_std": None, "notes": []}
    if len(logits) >= 10:
        out["is_mean"], out["is_std"] = inception_score(logits, splits=10)
    else:
        out["notes"].append("IS needs at least 10 images (10 splits)")
    if ref.features is None:
        out["notes"].append("precision/recall and KID need reference features; this statistics "
                            "file has only mu/sigma (make one with --mode fid_stats)")
    elif min(len(feats), len(ref.features)) > 3:
        out["precision"], out["recall"] = precision_recall(ref.features, feats, k=3)
        out["kid_mean"], out["kid_std"] = kernel_inception_distance(ref.features, feats)
    else:
        out["notes"].append("precision/recall need more than 3 images per set")
    return out


def _inception(opts: EvalOptions):
    """(model, weights SHA-256, weights path, runner): runner is the Paddle Inference
    predictor (--engine auto on the CPU, or inference) or None for the dynamic graph."""
    path = resolve_weights_path(opts.inception_weights)
    model, sha = load_inception(path)
    runner = make_inception_runner(model, sha, opts.engine,
                                   notice=lambda m: print(m, file=sys.stderr, flush=True))
    return model, sha, path, runner


def _compute_reference(opts: EvalOptions, cfg: Config, model, sha: str, path: str, runner=None):
    """Compute the training set's statistics with the Inception and cache them at ``path``."""
    source = dataset_source(cfg.data)
    say(f"computing reference statistics of {source.description} -> {path}", opts.quiet)
    feats, logits = inception_features(model, source, opts.inception_batch,
                                       progress=not opts.quiet, desc="reference", runner=runner)
    return save_stats(path, feats, source.description, sha, logits)


def _default_stats(cfg: Config) -> str:
    return default_stats_path(cfg.data)


def run_fid_stats(opts: EvalOptions, cfg: Config) -> None:
    dist.init_distributed()
    if not dist.is_main():
        return
    model, sha, _, runner = _inception(opts)
    path = opts.fid_stats or _default_stats(cfg)
    if os.path.isfile(path):
        old = load_stats(path)
        if (old.weights_sha256 == sha and old.features is not None
                and old.source == dataset_source(cfg.data).description):
            say(f"{path} is up to date ({old.num_images} images, {old.source})", opts.quiet)
            return
    ref = _compute_reference(opts, cfg, model, sha, path, runner)
    say(f"wrote {path}: mu/sigma of {ref.num_images} images ({ref.source})", opts.quiet)


def _early_reference(opts: EvalOptions, cfg: Config, weights_path: str):
    """Before hours of sampling: the reference statistics if they exist (checked against the
    weights), else make sure the training set they will be computed from is there."""
    path = opts.fid_stats or _default_stats(cfg)
    if os.path.isfile(path):
        ref = load_stats(path)
        check_same_weights(ref, file_digest(weights_path))
        if ref.weights_sha256 is None:
            say(f"note: {path} does not say which Inception weights made it; it must come "
                f"from pytorch-fid's {WEIGHTS_FILE} for the FID to mean anything", opts.quiet)
        return ref
    dataset_source(cfg.data)   # raises DatasetError naming the fix when the data is missing
    return None


def _warn_count(n: int) -> None:
    if n < PUBLISHED_NUM_SAMPLES:
        print(f"warning: {n} samples; FID/IS/precision/recall are biased by the sample count "
              f"and NOT comparable with published numbers, which use {PUBLISHED_NUM_SAMPLES}",
              file=sys.stderr, flush=True)


def run_eval(opts: EvalOptions, cfg: Config) -> None:
    dist.init_distributed()
    if opts.metrics == "bpd":
        return run_bpd(opts, cfg)
    weights_path = resolve_weights_path(opts.inception_weights)   # fail before sampling
    ref = _early_reference(opts, cfg, weights_path) if dist.is_main() else None
    if opts.samples:
        source = open_samples(opts.samples) if dist.is_main() else None
        info = {"samples": os.path.abspath(opts.samples), "checkpoint": None,
                "checkpoint_iteration": None, "sampler": None, "sampler_steps": None}
        if source is not None:
            _warn_count(len(source))
    else:
        if dist.is_main():
            _warn_count(opts.num_samples)    # before sampling, not hours later
        source, info = _generate_for_eval(opts, cfg)
    if not dist.is_main():
        return
    n = len(source)
    model, sha, wpath, runner = _inception(opts)
    if ref is None:
        ref = _compute_reference(opts, cfg, model, sha, opts.fid_stats or _default_stats(cfg),
                                 runner)
    feats, logits = inception_features(model, source, opts.inception_batch,
                                       progress=not opts.quiet, desc="inception", runner=runner)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        results = compute_metrics(feats, logits, ref)
    for w in caught:   # e.g. FID's singular-covariance offset, as pytorch-fid prints it
        results["notes"].append(str(w.message))
        print(f"warning: {w.message}", file=sys.stderr, flush=True)
    results.update(info)
    results.update({"num_samples": n, "comparable_with_published": n >= PUBLISHED_NUM_SAMPLES,
                    "reference": ref.path, "reference_source": ref.source,
                    "reference_num_images": ref.num_images, "inception_weights": wpath,
                    "inception_sha256": sha})
    out = opts.eval_out or os.path.join(cfg.sample.sample_dir, _eval_name(opts, cfg))
    text = json.dumps(results, indent=2)
    atomic_write(out, lambda fh: fh.write(text.encode()))
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"
    say(f"FID {fmt(results['fid'])}  IS {fmt(results['is_mean'])} ± {fmt(results['is_std'])}  "
        f"precision {fmt(results['precision'])}  recall {fmt(results['recall'])}  "
        f"KID {fmt(results['kid_mean'])}  ({n} samples; reference {ref.path})", opts.quiet)
    say(f"wrote {out}", opts.quiet)


def _eval_name(opts: EvalOptions, cfg: Config) -> str:
    if opts.samples:
        return f"eval_{os.path.splitext(os.path.basename(os.path.normpath(opts.samples)))[0]}.json"
    return f"eval_{cfg.sample.sample_postfix}_{opts.num_samples}.json"


# -- bits/dim (--metrics bpd) ------------------------------------------------------


def run_bpd(opts: EvalOptions, cfg: Config) -> None:
    """The bound of every test image (up to --num_samples), resumable and distributed."""
    if not opts.pretrained_path:
        raise CheckpointError("--metrics bpd needs --pretrained_path (the model to evaluate)")
    if cfg.sample.classifier_path:
        raise ConfigError("--classifier_path (classifier guidance) steers sampling; --metrics "
                          "bpd bounds the model's own likelihood: drop one of them")
    setup = _sampling_setup(opts, cfg)
    model, sampler = setup.model, setup.sampler
    evaluate_bpd(model, sampler.diffusion, cfg, opts.pretrained_path, opts.num_samples,
                 opts.eval_out, checkpoint_iteration(opts.pretrained_path),
                 progress=not opts.quiet, say=lambda m: say(m, opts.quiet))
