"""Outputs for 2-D toy data, in place of image grids: a scatter PNG of true against generated
points, an animated GIF of the reverse process, and a JSON of quality figures.

Drawn with Pillow and numpy only (matplotlib stays optional). Every file is written
atomically. The CLI and the trainer call ``run_toy_denoise``, ``write_training_samples``
and ``final_report`` when the data set (or the model's input shape) is a toy set.
"""
from __future__ import annotations

import io
import json
import os
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..config import parse_num_images
from ..data.toy import is_toy, mixture_spec, sample_toy
from ..io.files import atomic_write
from ..io.grid_output import show_image
from ..io.weights import load_checkpoint
from ..runtime import dist
from ..samplers import build_sampler, sampler_description
from ..samplers.noise import NoiseStream
from .metrics import TRUE_FRAC_3SIGMA, quality, requested_mode_stats

TOY_SHAPE = [2, 1, 1]       # a 2-D point as a 2-channel 1x1 image
LIM = 1.25                  # the plots show [-LIM, LIM]^2
DATA_RGB, SAMPLE_RGB = (31, 119, 180), (214, 39, 40)
PANEL = 320


# -- sampling ------------------------------------------------------------------------
def frame_steps(num_steps: int, frames: int) -> List[int]:
    """Indices of the steps after which to keep a frame: quadratically denser towards the
    end (t = 0), where the points move most, and always the last step."""
    k = np.arange(1, frames + 1)
    done = np.round(num_steps * (1.0 - (1.0 - k / frames) ** 2)).astype(np.int64)
    return sorted(set(np.clip(done, 1, num_steps).tolist()) | {num_steps})


def sample_points(model, sampler, n: int, batch: int, seed: int = 0,
                  frames: int = 0, progress: bool = False, labels=None,
                  guidance_scale: float = 0.0):
    """Draw n points -> (float32 [n, 2], [(t, float32 [n, 2]), ...]).

    With ``frames`` > 0 the second item holds x_T and about ``frames`` states x_t of the
    reverse process (see frame_steps; the last is the result). Point i uses the noise of
    (seed, i), whatever the batch size, and class ``labels[i]`` of a conditional model.
    """
    keep = set(s - 1 for s in frame_steps(sampler.num_steps, frames)) if frames else set()
    every = 1 if frames else sampler.num_steps
    pts, seq = [], []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        states = []
        if frames:
            x_T = NoiseStream(seed, range(start, start + m), TOY_SHAPE).next()
            states.append((sampler.steps[0][0], x_T.numpy().reshape(m, 2)))
        y = None if labels is None else labels[start:start + m]
        for i, out in enumerate(sampler.progressive(model, [m] + TOY_SHAPE, every=every, seed=seed,
                                                    index_offset=start, progress=progress, y=y,
                                                    guidance_scale=guidance_scale)):
            if not frames or i in keep:   # without frames, only the last step is yielded
                states.append((out["t"], out["x"].numpy().reshape(m, 2)))
        pts.append(states[-1][1])
        seq.append(states)
    frames_out = [(seq[0][k][0], np.concatenate([s[k][1] for s in seq]))
                  for k in range(len(seq[0]))] if frames else []
    return np.concatenate(pts).astype(np.float32), frames_out


# -- drawing -------------------------------------------------------------------------
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:   # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _to_pixels(pts: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    col = np.floor((pts[:, 0] + LIM) / (2 * LIM) * size).astype(np.int64)
    row = np.floor((LIM - pts[:, 1]) / (2 * LIM) * size).astype(np.int64)
    keep = (col >= 0) & (col < size - 1) & (row >= 0) & (row < size - 1)
    return row[keep], col[keep]


def _panel(layers: Sequence[Tuple[np.ndarray, tuple, float]], title: str,
           size: int = PANEL) -> Image.Image:
    """One square plot: each layer (points, rgb, opacity per point) is drawn as 2x2 dots,
    overlapping dots darken (1 - (1 - a)^count), on a light grid at -1, 0, 1."""
    img = np.full((size, size, 3), 255.0)
    for v in (-1.0, 0.0, 1.0):
        p = int((v + LIM) / (2 * LIM) * size)
        img[:, p] = img[p, :] = 235.0
    for pts, rgb, alpha in layers:
        row, col = _to_pixels(pts, size)
        count = np.zeros((size, size))
        for dr in (0, 1):
            for dc in (0, 1):
                np.add.at(count, (row + dr, col + dc), 1.0)
        cover = (1.0 - (1.0 - alpha) ** count)[..., None]
        img = img * (1.0 - cover) + np.asarray(rgb, dtype=np.float64) * cover
    img[[0, -1], :] = img[:, [0, -1]] = 150.0
    pic = Image.fromarray(np.round(img).astype(np.uint8))
    ImageDraw.Draw(pic).text((8, 6), title, fill=(40, 40, 40), font=_font(14))
    return pic


def _row(panels: List[Image.Image], caption: Optional[str] = None) -> Image.Image:
    gap, foot = 8, (26 if caption else 0)
    w = sum(p.width for p in panels) + gap * (len(panels) + 1)
    h = max(p.height for p in panels) + 2 * gap + foot
    out = Image.new("RGB", (w, h), (255, 255, 255))
    x = gap
    for p in panels:
        out.paste(p, (x, gap))
        x += p.width + gap
    if caption:
        ImageDraw.Draw(out).text((gap, h - foot), caption, fill=(40, 40, 40), font=_font(14))
    return out


def _save_png(img: Image.Image, path: str) -> str:
    atomic_write(path, lambda fh: img.save(fh, format="PNG", optimize=True))
    return path


def caption(q: dict) -> str:
    """The figures a person reads. Samples drawn for given classes are scored against the
    modes they asked for (the rest of the mixture is not their target), not against all."""
    parts = []
    if "frac_in_requested_mode" in q:
        parts += [f"{100 * q['frac_in_requested_mode']:.1f}% in the requested mode",
                  f"{100 * q['frac_within_3sigma_of_requested']:.1f}% within 3 sigma of it"]
    elif "modes_total" in q:
        parts += [f"{q['modes_covered']}/{q['modes_total']} modes",
                  f"{100 * q['frac_within_3sigma']:.1f}% within 3 sigma"]
    if "frac_in_requested_mode" not in q:
        parts.append(f"sliced W1 {q['sliced_w1']:.4f}")
    return ", ".join(parts)


def save_scatter(path: str, data: np.ndarray, samples: np.ndarray, title: str = "samples",
                 text: Optional[str] = None) -> str:
    """Two panels: true points (blue) and generated points (red), with a caption."""
    return _save_png(_row([_panel([(data, DATA_RGB, 0.35)], "data"),
                           _panel([(samples, SAMPLE_RGB, 0.35)], title)], text), path)


def save_reverse_gif(path: str, frames, data: Optional[np.ndarray] = None,
                     frame_ms: int = 80, hold_ms: int = 2000) -> str:
    """The reverse process x_T -> x_0 as an animated GIF (data faintly in grey behind)."""
    back = [(data, (160, 160, 160), 0.08)] if data is not None else []
    pics = [_panel(back + [(pts, SAMPLE_RGB, 0.35)], f"t = {max(t, 0)}").convert(
        "P", palette=Image.ADAPTIVE, colors=64) for t, pts in frames]
    durations = [frame_ms] * (len(pics) - 1) + [hold_ms]

    def _write(fh: io.BufferedWriter) -> None:
        pics[0].save(fh, format="GIF", save_all=True, append_images=pics[1:],
                     duration=durations, loop=0, optimize=True)
    atomic_write(path, _write)
    return path


def save_frames_png(path: str, frames, size: int = 200) -> str:
    """A strip of the reverse process: one small panel per frame, time running left to right."""
    return _save_png(_row([_panel([(pts, SAMPLE_RGB, 0.35)], f"t = {max(t, 0)}", size)
                           for t, pts in frames]), path)


def _write_json(path: str, obj: dict) -> str:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return path


# -- the whole output ----------------------------------------------------------------
def evaluate(points: np.ndarray, dataset: str, seed: int = 0) -> dict:
    """Quality of ``points`` and, for scale, of as many fresh true points (the noise floor)."""
    q = quality(points, dataset, seed=seed)
    truth = quality(sample_toy(dataset, len(points), seed=seed + 1, split="eval")[0],
                    dataset, seed=seed)
    q["true_data"] = {k: truth[k] for k in ("sliced_w1", "energy_distance",
                                            "frac_within_3sigma", "modes_covered") if k in truth}
    if "modes_total" in q:
        q["true_frac_within_3sigma_expected"] = TRUE_FRAC_3SIGMA
    return q


def write_outputs(model, sampler, dataset: Optional[str], n: int, batch: int, out_dir: str,
                  stem: str, seed: int = 0, gif: bool = True, extra: Optional[dict] = None,
                  progress: bool = False, labels=None, guidance_scale: float = 0.0) -> dict:
    """Sample n points and write {stem}.png (scatter), {stem}.gif (if gif) and {stem}.json.

    Returns {"png", "gif", "json", "quality", "points", "frames"}; without a known toy
    ``dataset`` the data panel stays empty and the JSON holds only the sampler.
    """
    start = time.perf_counter()
    pts, frames = sample_points(model, sampler, n, batch, seed, frames=40 if gif else 0,
                                progress=progress, labels=labels, guidance_scale=guidance_scale)
    seconds = time.perf_counter() - start
    info = {"sampler": sampler_description(sampler), "num_steps": sampler.num_steps,
            "sample_seconds": round(seconds, 2), "num_samples": int(n), **(extra or {})}
    out = {"points": pts, "frames": frames, "quality": info}
    data, text = np.zeros((0, 2)), None
    if dataset is not None and is_toy(dataset):
        q = evaluate(pts, dataset, seed=0)
        q.pop("mode_counts", None)
        info.update(q)
        if labels is not None and mixture_spec(dataset) is not None:   # conditional samples
            requested = requested_mode_stats(pts, labels[:n], *mixture_spec(dataset))
            info.update(requested)
            q.update(requested)
        data, text = sample_toy(dataset, n, seed=0, split="eval")[0], caption(q)
    out["png"] = save_scatter(os.path.join(out_dir, stem + ".png"), data, pts, text=text)
    if gif:
        out["gif"] = save_reverse_gif(os.path.join(out_dir, stem + ".gif"), frames, data)
    out["json"] = _write_json(os.path.join(out_dir, stem + ".json"), info)
    return out


def summary(q: dict) -> str:
    if "sliced_w1" not in q:
        return q["sampler"]
    floor = q["true_data"]["sliced_w1"]
    if "frac_in_requested_mode" in q:   # the whole mixture's W1 is no target for one class
        return f"{q['dataset']}, requested classes: {caption(q)}; {q['sampler']}"
    return f"{q['dataset']}: {caption(q)} (fresh true points: {floor:.4f}); {q['sampler']}"


def _sample_batch(cfg, n: int) -> int:
    return int(cfg.sample.batchsize or min(n, cfg.train.batchsize))


def write_training_samples(trainer) -> str:
    """Trainer hook: scatter, GIF and JSON of the EMA model, as sample_iter{N}.*"""
    cfg = trainer.cfg
    n = parse_num_images(cfg.sample.num_images)[0]
    labels = getattr(trainer, "sample_labels", None)   # a conditional model: sample.class_label
    out = write_outputs(trainer.ema.model, build_sampler(trainer.diffusion, cfg.sample),
                        cfg.data.dataset, n, _sample_batch(cfg, n), cfg.sample.sample_dir,
                        f"sample_iter{trainer.iteration}", seed=cfg.sample.seed,
                        extra={"iteration": trainer.iteration}, progress=trainer.progress,
                        labels=labels,
                        guidance_scale=cfg.sample.guidance_scale if labels is not None else 0.0)
    trainer.toy_quality = out["quality"]
    return out["png"]


def final_report(trainer, say) -> None:
    """After training: the samples of the last iteration (unless already written) and a
    one-line summary of their quality."""
    if not trainer.is_main:
        return
    stem = os.path.join(trainer.cfg.sample.sample_dir, f"sample_iter{trainer.iteration}")
    if getattr(trainer, "toy_quality", {}).get("iteration") != trainer.iteration:
        trainer.write_samples()
    say(f"wrote {stem}.png, {stem}.gif and {stem}.json")
    say(summary(trainer.toy_quality))


def report_finished(cfg, iteration: int, say) -> None:
    """A finished run met again (a plain rerun of run_toy.py): where its figures are and
    their one-line summary, read from the JSON it wrote, without sampling again."""
    stem = os.path.join(cfg.sample.sample_dir, f"sample_iter{iteration}")
    try:
        with open(stem + ".json", encoding="utf-8") as fh:
            q = json.load(fh)
    except (OSError, ValueError):
        return
    say(f"its samples: {stem}.png, {stem}.gif and {stem}.json")
    say(summary(q))


def dataset_of_file(path: str) -> Optional[str]:
    """The data set a weight file was trained on, as its stored config says (or None)."""
    cfg = load_checkpoint(path).get("config") or {}
    return (cfg.get("data") or {}).get("dataset")


def run_toy_denoise(cfg, model, sampler, say, pretrained_path: str, sequence: bool = False,
                    save_path: Optional[str] = None, progress: bool = True, show: bool = False,
                    save_npz: bool = False, labels=None, guidance_scale: float = 0.0) -> None:
    """--mode denoise for 2-D models: sample_{postfix}.png/.json, and with ``sequence``
    sequence_{postfix}.gif/.png (``save_path`` FILE.png: FILE.png/.json/.gif); ``save_npz``
    writes the float points (and their labels); ``show`` opens the PNG."""
    if not dist.is_main():
        return
    dataset = dataset_of_file(pretrained_path)
    dataset = dataset if dataset and is_toy(dataset) else cfg.data.dataset
    n = parse_num_images(cfg.sample.num_images)[0]
    out_dir, postfix = cfg.sample.sample_dir, cfg.sample.sample_postfix
    stem = ("sequence_" if sequence else "sample_") + postfix
    if save_path:
        out_dir, stem = os.path.split(os.path.splitext(save_path)[0])
    out = write_outputs(model, sampler, dataset, n, _sample_batch(cfg, n), out_dir or ".", stem,
                        seed=cfg.sample.seed, gif=bool(sequence), progress=progress,
                        labels=labels, guidance_scale=guidance_scale)
    if sequence:   # every 5th of the GIF's frames, always ending with the result
        frames = out["frames"]
        strip = frames[::5] if (len(frames) - 1) % 5 == 0 else frames[::5] + frames[-1:]
        save_frames_png(os.path.join(out_dir, stem + "_frames.png"), strip)
    say(f"wrote {out['png']}, {out['json']}" + (f" and {out['gif']}" if "gif" in out else ""))
    if show:
        show_image(out["png"], lambda message: print(message, flush=True))
    if save_npz:
        path = os.path.join(out_dir, postfix + ".npz")
        extra = {} if labels is None else {"labels": np.asarray(labels)}
        atomic_write(path, lambda fh: np.savez(fh, points=out["points"], **extra))
        say(f"wrote {path}")
    say(summary(out["quality"]))
