"""Regenerate tests/fixtures/adm_parity.npz from improved-diffusion's and guided-diffusion's
own code (PyTorch, CPU).

Each case is a scaled-down network in the shapes of a public checkpoint family, built where
possible by upstream's own flag parsing from flags as its READMEs write them. Every
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
import shlex
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from legacy_weights import fill_weights  # noqa: E402  (the same weights the test rebuilds)

# Cases built by upstream's own flag parsing (script_util: add_dict_to_argparser,
# create_model_and_diffusion / create_classifier_and_diffusion), the flags as its README
# writes them with the sizes scaled down: name -> (package, flags, batch).
FLAG_CASES = {
    # improved-diffusion CIFAR-10 (public: --num_channels 128 --num_res_blocks 3): four
    # heads in the legacy order, scale-shift, learned sigma, 4000 cosine steps, rescaled t.
    "improved_cifar10": ("improved_diffusion", "--image_size 32 --num_channels 32 "
                         "--num_res_blocks 2 --learn_sigma True --dropout 0.3 --diffusion_steps "
                         "4000 --noise_schedule cosine --timestep_respacing ddim50", 2),
    # guided-diffusion 64x64: new attention order, 64-wide heads (here 32), resblock up/down
    "guided_64": ("guided_diffusion", "--attention_resolutions 32,16,8 --class_cond True "
                  "--diffusion_steps 1000 --dropout 0.1 --image_size 32 --channel_mult 1,2,3,4 "
                  "--learn_sigma True --noise_schedule cosine --num_channels 32 "
                  "--num_head_channels 32 --num_res_blocks 2 --resblock_updown True "
                  "--use_new_attention_order True --use_scale_shift_norm True "
                  "--timestep_respacing 250", 2),
    # guided-diffusion 128x128: four heads in the legacy order
    "guided_128": ("guided_diffusion", "--attention_resolutions 32,16,8 --class_cond True "
                   "--diffusion_steps 1000 --image_size 32 --channel_mult 1,1,2,3,4 "
                   "--learn_sigma True --noise_schedule linear --num_channels 32 --num_heads 4 "
                   "--num_res_blocks 1 --resblock_updown True --use_scale_shift_norm True", 2),
    # guided-diffusion 256x256 unconditional (and the LSUN models): six levels
    "guided_256_uncond": ("guided_diffusion", "--attention_resolutions 32,16,8 --class_cond "
                          "False --diffusion_steps 1000 --image_size 32 --channel_mult "
                          "1,1,2,2,4,4 --learn_sigma True --noise_schedule linear "
                          "--num_channels 32 --num_head_channels 32 --num_res_blocks 1 "
                          "--resblock_updown True --use_scale_shift_norm True", 1),
    # guided-diffusion's classifiers (public: width 128, depth 2 or 4, 64-wide heads)
    "classifier_64": ("guided_classifier", "--image_size 64 --classifier_attention_resolutions "
                      "32,16,8 --classifier_depth 1 --classifier_width 64 --classifier_pool "
                      "attention --classifier_resblock_updown True "
                      "--classifier_use_scale_shift_norm True", 1),
}
# Shapes upstream's flags cannot make at a small size, built from the constructors:
# name -> (package, kwargs, diffusion kwargs or None, image size, batch).
CASES = {
    # improved-diffusion ImageNet-64 conditional (1000 classes, unrescaled sigmas and t)
    "improved_imagenet64_cond": ("improved_diffusion", dict(
        in_channels=3, model_channels=32, out_channels=6, num_res_blocks=2,
        attention_resolutions=(2, 4), channel_mult=(1, 2, 3, 4), num_heads=4,
        num_classes=1000, use_scale_shift_norm=True),
        dict(steps=4000, noise_schedule="cosine", learn_sigma=True, rescale_timesteps=False,
             rescale_learned_sigmas=False, timestep_respacing="10,10,10"), 32, 2),
    # improved-diffusion LSUN 256: six levels, one head, no scale-shift
    "improved_lsun256": ("improved_diffusion", dict(
        in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
        attention_resolutions=(4,), channel_mult=(1, 1, 2, 2, 4, 4), num_heads=1,
        use_scale_shift_norm=False), None, 32, 1),
    # guided-diffusion 512x512: channel_mult 0.5, seven levels
    "guided_512": ("guided_diffusion", dict(
        image_size=64, in_channels=3, model_channels=64, out_channels=6, num_res_blocks=1,
        attention_resolutions=(4, 8), channel_mult=(0.5, 1, 1, 2, 2, 4, 4), num_classes=1000,
        num_head_channels=32, use_scale_shift_norm=True, resblock_updown=True), None, 64, 1),
}
CLASSIFIERS = {
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
    result, meta = {}, {"cases": {}, "flag_cases": {}, "flag_classifiers": {}, "classifiers": {},
                    "spacings": []}
    scripts = {"improved_diffusion": iscript, "guided_diffusion": gscript}
    base_kwargs, script_of = {}, {}

    def run_case(name, net, spaced, base, size, batch, num_classes, stored):
        shapes = load_random(net, th)
        x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        T = base.num_timesteps if base is not None else 1000
        t = rng.integers(0, T, size=batch).astype(np.int64)
        y = rng.integers(0, num_classes, size=batch).astype(np.int64) if num_classes else None
        extra = {} if y is None else {"y": th.from_numpy(y)}
        with th.no_grad():
            out = net(th.from_numpy(x), th.from_numpy(t).float(), **extra).numpy()
        result.update({f"{name}/x": x, f"{name}/t": t, f"{name}/out": out})
        if y is not None:
            result[f"{name}/y"] = y
        stored["shapes"] = shapes
        if spaced is None:
            return
        ts = rng.integers(0, len(spaced.use_timesteps), size=batch).astype(np.int64)
        with th.no_grad():
            pmv = spaced.p_mean_variance(net, th.from_numpy(x), th.from_numpy(ts),
                                         clip_denoised=True, model_kwargs=extra)
        for key in ("mean", "log_variance", "pred_xstart"):
            result[f"{name}/pmv_{key}"] = pmv[key].numpy()
        result[f"{name}/pmv_t"] = ts
        noise = rng.standard_normal(x.shape).astype(np.float32)
        x0 = np.tanh(x).astype(np.float32)
        with th.no_grad():
            terms = base.training_losses(net, th.from_numpy(x0), th.from_numpy(t),
                                         model_kwargs=extra, noise=th.from_numpy(noise))
        if name == "improved_cifar10":   # the same run trained on L_vlb (--use_kl True)
            with th.no_grad():
                kl = script_of[name].create_gaussian_diffusion(**dict(base_kwargs[name], use_kl=True))
                result[f"{name}/loss_rescaled_kl"] = kl.training_losses(
                    net, th.from_numpy(x0), th.from_numpy(t), model_kwargs=extra,
                    noise=th.from_numpy(noise))["loss"].numpy()
        result[f"{name}/loss_x0"] = x0
        result[f"{name}/loss_noise"] = noise
        for key, value in terms.items():
            result[f"{name}/loss_{key}"] = value.numpy()
        kind = "cosine" if base.betas[-1] > 0.5 else "linear"   # cosine ends at 0.999
        stored["betas"] = f"betas/{base.num_timesteps}_{kind}"     # one copy per schedule
        result[stored["betas"]] = base.betas

    for name, (package, flags, batch) in FLAG_CASES.items():
        classifier = package == "guided_classifier"
        script = gscript if classifier else scripts[package]
        defaults = (script.classifier_and_diffusion_defaults() if classifier
                    else script.model_and_diffusion_defaults())
        parser = argparse.ArgumentParser()
        script.add_dict_to_argparser(parser, defaults)
        values = script.args_to_dict(parser.parse_args(shlex.split(flags)), defaults.keys())
        stored = {"package": package, "flags": flags}
        if classifier:
            net, _ = script.create_classifier_and_diffusion(**values)
            shapes = load_random(net, th)
            size = values["image_size"]
            x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
            t = rng.integers(0, 1000, size=batch).astype(np.int64)
            with th.no_grad():
                logits = net(th.from_numpy(x), th.from_numpy(t).float()).numpy()
            result.update({f"{name}/x": x, f"{name}/t": t, f"{name}/logits": logits})
            stored["shapes"] = shapes
            meta["flag_classifiers"][name] = stored
            continue
        net, spaced = script.create_model_and_diffusion(**values)
        base_kwargs[name] = {
            k: v for k, v in dict(steps=values["diffusion_steps"], learn_sigma=values["learn_sigma"],
                                  sigma_small=values.get("sigma_small", False),
                                  noise_schedule=values["noise_schedule"], use_kl=values["use_kl"],
                                  predict_xstart=values["predict_xstart"],
                                  rescale_timesteps=values["rescale_timesteps"],
                                  rescale_learned_sigmas=values["rescale_learned_sigmas"],
                                  timestep_respacing="").items()
            if k != "sigma_small" or package == "improved_diffusion"}
        script_of[name] = script
        base = script.create_gaussian_diffusion(**base_kwargs[name])
        stored["respacing"] = values["timestep_respacing"]
        run_case(name, net, spaced, base, values["image_size"], batch,
                 1000 if values["class_cond"] else None, stored)
        meta["flag_cases"][name] = stored

    for name, (package, kwargs, diffusion, size, batch) in CASES.items():
        net = (iunet if package == "improved_diffusion" else gunet).UNetModel(**kwargs)
        spaced = base = None
        if diffusion:
            spaced = scripts[package].create_gaussian_diffusion(**diffusion)
            base = scripts[package].create_gaussian_diffusion(**dict(diffusion, timestep_respacing=""))
        stored = {"package": package, "kwargs": kwargs, "diffusion": diffusion}
        run_case(name, net, spaced, base, size, batch, kwargs.get("num_classes"), stored)
        meta["cases"][name] = stored
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
    result["betas/4000_cosine"] = ggd.get_named_beta_schedule("cosine", 4000)
    result["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(args.out, **result)
    print("wrote", os.path.abspath(args.out), f"{os.path.getsize(args.out) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
