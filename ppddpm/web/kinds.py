"""The kinds of job the page can ask for: one registry, read by the server (which kinds
exist, their titles, whether they take an uploaded image) and by the worker (how to run).

Each kind has ``plan(form, entry, image) -> plan`` (every check, before the job is queued;
a ConfigError names the bad value) and ``run(job, loaded)`` (in the worker, reporting
through the Job). An editing mode (img2img, inpainting, interpolation) is one more entry
whose ``plan`` reads the checked upload (``needs_image``) and whose ``run`` streams its
frames the same way; the page shows its form fields and the upload panel from /api/info.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from .img2img_job import plan_img2img, run_img2img
from .sample_job import plan_sample, run_sample


class JobKind(NamedTuple):
    title: str
    plan: Callable      # (form: dict, entry: ModelEntry, image: ndarray | None) -> plan
    run: Callable       # (job: Job, loaded: LoadedModel) -> None
    needs_image: bool = False


JOB_KINDS = {
    "sample": JobKind("Sample", lambda form, entry, image: plan_sample(form, entry), run_sample),
    # SDEdit of the uploaded image (edit/img2img.py); the page shows its strength field
    "img2img": JobKind("Image to image (SDEdit)", plan_img2img, run_img2img, needs_image=True),
}
