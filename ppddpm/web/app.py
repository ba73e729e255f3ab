"""The web server: one static page (static/, no outside scripts or fonts) and a small JSON
API, as a Starlette application served by uvicorn (the web extra).

  GET  /                              the page
  GET  /api/info                      models under --models, samplers, job kinds
  POST /api/jobs                      queue a job (JSON form); 400/403 with {"error"}
  GET  /api/jobs/{id}/events          server-sent events: place in the queue, progress, frames
  POST /api/jobs/{id}/stop            stop it (waiting: leaves the queue; running: next step)
  GET  /api/jobs/{id}/files/{name}    a download: grid, gif, npz
  POST /api/upload?model=NAME         an image for an editing job (body: the file's bytes)

With a token (--token), every address but the static files needs it, as ``?token=`` or the
X-Token header.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import json
import os
from typing import NamedTuple, Optional
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..config.names import SAMPLER_TITLES, SAMPLERS
from ..errors import PPDDPMError
from ..samplers.factory import SAMPLER_KEYS
from .catalog import Catalog, ModelRefused
from .jobs import Job, JobQueue
from .kinds import JOB_KINDS
from .sample_job import DOWNLOADS, MAX_IMAGES
from .uploads import MAX_UPLOAD_BYTES, Uploads, read_image
from .warm import WarmModel

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
EVENT_POLL_S = 0.1   # how often an open event stream looks at its job


class WebState(NamedTuple):
    catalog: Catalog
    queue: JobQueue
    warm: WarmModel
    uploads: Uploads
    out_dir: str
    token: Optional[str]


def make_state(models_dir: str, out_dir: str, token: Optional[str], engine: str) -> WebState:
    warm = WarmModel(engine)

    def run_job(job: Job) -> None:   # in the worker thread
        entry = job.plan.entry
        st = os.stat(entry.path)
        job.note(f"loading {entry.name}" if warm.key != (entry.path, (st.st_size, st.st_mtime_ns))
                 else f"{entry.name} is loaded")
        loaded = warm.get(entry, (st.st_size, st.st_mtime_ns))
        JOB_KINDS[job.kind].run(job, loaded)

    return WebState(Catalog(models_dir), JobQueue(run_job), warm, Uploads(), out_dir, token)


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def build_app(state: WebState) -> Starlette:
    def authorised(request: Request) -> bool:
        if not state.token:
            return True
        given = request.headers.get("x-token") or request.query_params.get("token") or ""
        return hmac.compare_digest(given.encode(), state.token.encode())

    def guarded(handler):
        async def wrapped(request: Request):
            if not authorised(request):
                return error("this server needs its token: open the address it printed "
                             "(ending in ?token=...)", 401)
            return await handler(request)
        return wrapped

    def find_job(request: Request) -> Optional[Job]:
        return state.queue.get(request.path_params["job_id"])

    async def page(request: Request):
        if not authorised(request):
            return HTMLResponse("<p>This ppddpm server needs its token: open the address it "
                                "printed, ending in <code>?token=...</code></p>", 401)
        return FileResponse(os.path.join(STATIC, "index.html"))

    async def info(request: Request):
        entries = await run_in_threadpool(state.catalog.entries)
        loaded = state.warm.key[0] if state.warm.key else None
        return JSONResponse({
            "models": [e.public() for e in entries],
            "samplers": [{"name": s, "title": SAMPLER_TITLES[s], "reads": list(SAMPLER_KEYS[s])}
                         for s in SAMPLERS],
            "kinds": [{"name": k, "title": v.title, "needs_image": v.needs_image}
                      for k, v in JOB_KINDS.items()],
            "max_images": MAX_IMAGES,
            "loaded": next((e.name for e in entries if e.path == loaded), None)})

    async def submit(request: Request):
        try:
            form = await request.json()
        except ValueError:
            return error("the request is not JSON")
        if not isinstance(form, dict):
            return error("the request must be a JSON object")
        kind = JOB_KINDS.get(form.get("kind", "sample"))
        if kind is None:
            return error(f"job kind {str(form.get('kind'))[:50]!r} is not known; choose one of "
                         f"{list(JOB_KINDS)}")
        try:
            entry = await run_in_threadpool(state.catalog.resolve, form.get("model"))
        except ModelRefused as exc:
            return error(str(exc), 403)
        image = None
        if kind.needs_image:
            image = state.uploads.get(str(form.get("upload") or ""), entry)
            if image is None:
                return error(f"{kind.title} needs an image: upload one for {entry.name} first")
        try:
            plan = await run_in_threadpool(kind.plan, form, entry, image)
        except PPDDPMError as exc:
            return error(str(exc))
        job = state.queue.submit(Job(form.get("kind", "sample"), plan, state.out_dir))
        return JSONResponse({"id": job.id, "position": state.queue.position(job)})

    async def events(request: Request):
        job = find_job(request)
        if job is None:
            return error("no such job (the server keeps the last 50)", 404)

        async def stream():
            sent, frames_sent = None, 0
            try:
                while True:   # ends when the job does
                    position = state.queue.position(job)
                    snap = job.snapshot(position)
                    if (snap["revision"], position) != sent:
                        sent = (snap["revision"], position)
                        if snap["frame_count"] != frames_sent:
                            frames_sent = snap["frame_count"]
                            snap["frames"] = {k: "data:image/png;base64,"
                                              + base64.b64encode(v).decode()
                                              for k, v in job.frames.items()}
                        yield f"data: {json.dumps(snap)}\n\n"
                        if snap["state"] in ("done", "failed", "stopped"):
                            return
                    await asyncio.sleep(EVENT_POLL_S)
            finally:   # the tab was closed (Starlette cancels the stream): nobody waits for it
                if not job.finished:
                    state.queue.stop(job)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def stop(request: Request):
        job = find_job(request)
        if job is None:
            return error("no such job", 404)
        state.queue.stop(job)
        return JSONResponse({"id": job.id, "state": job.state})

    async def download(request: Request):
        job, name = find_job(request), request.path_params["name"]
        path = job.files.get(name) if job is not None and name in DOWNLOADS else None
        if path is None or not os.path.isfile(path):
            return error(f"no download {name[:20]!r} for this job", 404)
        return FileResponse(path, filename=f"ppddpm-{job.id}-{os.path.basename(path)}")

    async def upload(request: Request):
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_UPLOAD_BYTES:
            return error(f"the upload is {size // 2**20} MB; images up to "
                         f"{MAX_UPLOAD_BYTES // 2**20} MB are taken", 413)
        try:
            entry = await run_in_threadpool(state.catalog.resolve,
                                            request.query_params.get("model"))
        except ModelRefused as exc:
            return error(str(exc), 403)
        data = await request.body()
        name = unquote(request.headers.get("x-filename", "the upload"))
        try:
            image = read_image(data, name, entry)
        except PPDDPMError as exc:
            return error(str(exc))
        c, h, w = entry.shape
        return JSONResponse({"id": state.uploads.add(image, entry), "message":
                             f"{name}: {w}x{h}, ready for {entry.name}"})

    routes = [
        Route("/", page),
        Route("/api/info", guarded(info)),
        Route("/api/jobs", guarded(submit), methods=["POST"]),
        Route("/api/jobs/{job_id}/events", guarded(events)),
        Route("/api/jobs/{job_id}/stop", guarded(stop), methods=["POST"]),
        Route("/api/jobs/{job_id}/files/{name}", guarded(download)),
        Route("/api/upload", guarded(upload), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
