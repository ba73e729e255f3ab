"""Regenerate tests/fixtures/adm_parity.npz from improved-diffusion's and guided-diffusion's
own code (PyTorch, CPU).

Each case is a scaled-down network in the shapes of a public checkpoint family. Every
weight is random (tests/legacy_weights.py ``fill_weights``, a function of the parameter's
name), so upstream's zero-initialised output layers do not hide anything. Stored: the
upstream key names and shapes, the input, the network's output, and for the diffusion
cases ``p_mean_variance``'s mean, log-variance and pred_x0 (respaced as upstream
respaces) and ``training_losses``' terms; for classifiers the logits. Also the cosine
betas of T=4000 and upstream's respaced timestep sets. The test rebuilds the same
weights in ppddpm through the converters' key mapping.

Usage: /work/venv-ref/bin/python tools/make_adm_fixture.py \\
           --improved GIT_DIR_OR_CHECKOUT --guided GIT_DIR_OR_CHECKOUT
(a bare git directory, as `fetch` gives, is exported to a temporary folder; the code is
only imported, nothing of it is copied).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from legacy_weights import fill_weights  # noqa: E402  (the same weights the test rebuilds)

# name -> (package, constructor kwargs, diffusion kwargs or None, image size, batch)
# The families: improved-diffusion CIFAR-10 (multi-head legacy order, scale-shift, learned
# sigma, 4000 cosine steps, rescaled timesteps), its ImageNet-64 conditional, its LSUN
# 256 (6 levels, one head, no scale-shift); guided-diffusion 64 (new order, head width,
# resblock up/down, labels), 128 (legacy order with 4 heads), 256 unconditional (6 levels)
# and 512 (channel_mult 0.5, 7 levels).
CASES = {
    "improved_cifar10": ("improved_diffusion", dict(
        in_channels=3, model_channels=32, out_channels=6, num_res_blocks=2,
        attention_resolutions=(2, 4), dropout=0.3, channel_mult=(1, 2, 2, 2), num_heads=4,
        use_scale_shift_norm=True),
        dict(steps=4000, noise_schedule="cosine", learn_sigma=True, rescale_timesteps=True,
             rescale_learned_sigmas=True, timestep_respacing="ddim50"), 32, 2),
    "improved_imagenet64_cond": ("improved_diffusion", dict(
        in_channels=3, model_channels=32, out_channels=6, num_res_blocks=2,
        attention_resolutions=(2, 4), channel_mult=(1, 2, 3, 4), num_heads=4, num_classes=10,
        use_scale_shift_norm=True),
        dict(steps=4000, noise_schedule="cosine", learn_sigma=True, rescale_timesteps=False,
             rescale_learned_sigmas=False, timestep_respacing="10,10,10"), 32, 2),
    "improved_lsun256": ("improved_diffusion", dict(
        in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
        attention_resolutions=(4,), channel_mult=(1, 1, 2, 2, 4, 4), num_heads=1,
        use_scale_shift_norm=False), None, 32, 1),
    "guided_64": ("guided_diffusion", dict(
        image_size=32, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=2,
        attention_resolutions=(1, 2, 4), dropout=0.1, channel_mult=(1, 2, 3, 4),
        num_classes=10, num_head_channels=32, use_scale_shift_norm=True, resblock_updown=True,
        use_new_attention_order=True),
        dict(steps=1000, noise_schedule="cosine", learn_sigma=True, timestep_respacing="250"),
        32, 2),
    "guided_128": ("guided_diffusion", dict(
        image_size=32, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
        attention_resolutions=(2, 4), channel_mult=(1, 1, 2, 3, 4), num_classes=10,
        num_heads=4, use_scale_shift_norm=True, resblock_updown=True),
        dict(steps=1000, noise_schedule="linear", learn_sigma=True, timestep_respacing=""),
        32, 2),
    "guided_256_uncond": ("guided_diffusion", dict(
        image_size=32, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
        attention_resolutions=(2, 4), channel_mult=(1, 1, 2, 2, 4, 4), num_head_channels=32,
        use_scale_shift_norm=True, resblock_updown=True), None, 32, 1),
    "guided_512": ("guided_diffusion", dict(
        image_size=64, in_channels=3, model_channels=64, out_channels=6, num_res_blocks=1,
        attention_resolutions=(4, 8), channel_mult=(0.5, 1, 1, 2, 2, 4, 4), num_classes=10,
        num_head_channels=32, use_scale_shift_norm=True, resblock_updown=True), None, 64, 1),
}
CLASSIFIERS = {
    "classifier_attention": dict(
        image_size=32, in_channels=3, model_channels=32, out_channels=10, num_res_blocks=1,
        attention_resolutions=(1, 2, 4), channel_mult=(1, 2, 3, 4), num_head_channels=32,
        use_scale_shift_norm=True, resblock_updown=True, pool="attention"),
    "classifier_adaptive": dict(
        image_size=32, in_channels=3, model_channels=32, out_channels=10, num_res_blocks=1,
        attention_resolutions=(4,), channel_mult=(1, 2, 2), num_heads=2, pool="adaptive"),
    "classifier_spatial": dict(
        image_size=32, in_channels=3, model_channels=32, out_channels=10, num_res_blocks=1,
        attention_resolutions=(4,), channel_mult=(1, 2, 2), num_heads=1, pool="spatial"),
    "classifier_spatial_v2": dict(
        image_size=32, in_channels=3, model_channels=32, out_channels=10, num_res_blocks=1,
        attention_resolutions=(), channel_mult=(1, 2), num_heads=1, pool="spatial_v2",
        resblock_updown=True),
}
SPACINGS = [(4000, "ddim50"), (4000, "250"), (4000, "10,10,10"), (1000, "250"),
            (1000, "ddim25"), (1000, "27,13,7"), (4000, "100")]


def export_repo(source: str, package: str, dest: str) -> None:
    if os.path.isdir(os.path.join(source, package)):
        os.symlink(os.path.join(os.path.abspath(source), package), os.path.join(dest, package))
        return
    tar = subprocess.run(["git", "--git-dir", source, "archive", "HEAD", package],
                         check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=tar, check=True)


def load_random(net, th):
    shapes = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    net.load_state_dict({k: th.from_numpy(v) for k, v in fill_weights(shapes).items()})
    net.eval()
    return shapes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--improved", required=True, help="openai/improved-diffusion (git dir or checkout)")
    ap.add_argument("--guided", required=True, help="openai/guided-diffusion (git dir or checkout)")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures", "adm_parity.npz"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    export_repo(args.improved, "improved_diffusion", tmp)
    export_repo(args.guided, "guided_diffusion", tmp)
    sys.path.insert(0, tmp)
    import torch as th
    from guided_diffusion import gaussian_diffusion as ggd
    from guided_diffusion import respace as grespace
    from guided_diffusion import script_util as gscript
    from guided_diffusion import unet as gunet
    from improved_diffusion import script_util as iscript
    from improved_diffusion import unet as iunet
    th.manual_seed(0)
    rng = np.random.default_rng(2024)
    result, meta = {}, {"cases": {}, "classifiers": {}, "spacings": []}
    for name, (package, kwargs, diffusion, size, batch) in CASES.items():
        net = (iunet if package == "improved_diffusion" else gunet).UNetModel(**kwargs)
        shapes = load_random(net, th)
        x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        T = diffusion["steps"] if diffusion else 1000
        t = rng.integers(0, T, size=batch).astype(np.int64)
        y = (rng.integers(0, kwargs["num_classes"], size=batch).astype(np.int64)
             if kwargs.get("num_classes") else None)
        extra = {} if y is None else {"y": th.from_numpy(y)}
        with th.no_grad():
            out = net(th.from_numpy(x), th.from_numpy(t).float(), **extra).numpy()
        result.update({f"{name}/x": x, f"{name}/t": t, f"{name}/out": out})
        if y is not None:
            result[f"{name}/y"] = y
        meta["cases"][name] = {"package": package, "kwargs": kwargs, "diffusion": diffusion,
                               "shapes": shapes}
        if diffusion:
            script = iscript if package == "improved_diffusion" else gscript
            spaced = script.create_gaussian_diffusion(**diffusion)
            k = len(spaced.use_timesteps)
            ts = rng.integers(0, k, size=batch).astype(np.int64)
            with th.no_grad():
                pmv = spaced.p_mean_variance(net, th.from_numpy(x), th.from_numpy(ts),
                                             clip_denoised=True, model_kwargs=extra)
            for key in ("mean", "log_variance", "pred_xstart"):
                result[f"{name}/pmv_{key}"] = pmv[key].numpy()
            result[f"{name}/pmv_t"] = ts
            full = dict(diffusion, timestep_respacing="")
            base = script.create_gaussian_diffusion(**full)
            noise = rng.standard_normal(x.shape).astype(np.float32)
            x0 = np.tanh(x).astype(np.float32)
            with th.no_grad():
                terms = base.training_losses(net, th.from_numpy(x0), th.from_numpy(t),
                                             model_kwargs=extra, noise=th.from_numpy(noise))
            result[f"{name}/loss_x0"] = x0
            result[f"{name}/loss_noise"] = noise
            for key, value in terms.items():
                result[f"{name}/loss_{key}"] = value.numpy()
            result[f"{name}/betas"] = base.betas
    for name, kwargs in CLASSIFIERS.items():
        net = gunet.EncoderUNetModel(**kwargs)
        shapes = load_random(net, th)
        x = rng.standard_normal((2, 3, kwargs["image_size"], kwargs["image_size"])).astype(np.float32)
        t = rng.integers(0, 1000, size=2).astype(np.int64)
        with th.no_grad():
            logits = net(th.from_numpy(x), th.from_numpy(t).float()).numpy()
        result.update({f"{name}/x": x, f"{name}/t": t, f"{name}/logits": logits})
        meta["classifiers"][name] = {"kwargs": kwargs, "shapes": shapes}
    for T, spec in SPACINGS:
        meta["spacings"].append([T, spec, sorted(grespace.space_timesteps(T, spec))])
    result["cosine4000_betas"] = ggd.get_named_beta_schedule("cosine", 4000)
    result["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(args.out, **result)
    print("wrote", os.path.abspath(args.out), f"{os.path.getsize(args.out) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
