"""The web page in a real browser: headless Chromium from the system's packages, driven by
Playwright, against ``python -m ppddpm.web`` serving tiny random-weights models.

Chromium and Playwright are test dependencies that .ci/run installs; without them these
tests FAIL, naming the install command (deselect them with ``-m "not browser"``).
With PPDDPM_SCREENSHOTS=FOLDER the tests also save screenshots of the page there (the
README's come from ``PPDDPM_SCREENSHOTS=docs/web``)."""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from test_web_catalog import write_tiny_model

pytestmark = pytest.mark.browser
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "t0ken-for-tests"
INSTALL = ('install them with: apt-get install -y chromium && pip install -e ".[dev,web]"'
           ' (or leave these tests out: python -m pytest -m "not browser")')
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The server on a free port: (page address, models folder, output folder)."""
    root = tmp_path_factory.mktemp("web_site")
    models = root / "models"
    models.mkdir()
    write_tiny_model(models / "uncond.pdparam", steps=200)
    write_tiny_model(models / "long.pdparam", steps=1000)
    write_tiny_model(models / "cond.pdparam", steps=200, num_classes=3,
                     class_names=["cat", "dog", "owl"])
    write_tiny_model(root / "outside.pdparam", steps=200)   # a real file, just not under DIR
    out = root / "out"
    log = open(root / "server.log", "w")   # a file: a long log never blocks the server
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "ppddpm.web", "--models", str(models), "--out",
                             str(out), "--port", "0", "--engine", "dygraph", "--token", TOKEN],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    timer = threading.Timer(120, proc.kill)   # a server that never prints its address
    timer.start()
    url = None
    for line in proc.stdout:
        found = re.search(r"open (http://\S+)", line)
        if found:
            url = found.group(1)
            break
    timer.cancel()
    if url is None:
        proc.kill()
        log.close()
        pytest.fail(f"the server did not start: {(root / 'server.log').read_text()}",
                    pytrace=False)
    yield url, models, out
    proc.send_signal(signal.SIGINT)   # Ctrl-C: one line, exit status 130
    try:
        status = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    finally:
        log.close()
    leftover = (root / "server.log").read_text()
    assert "Traceback" not in leftover, leftover
    assert status == 130 and "ppddpm web: stopped (Ctrl-C)\n" in leftover, (status, leftover)


@pytest.fixture(scope="module")
def browser():
    exe = os.environ.get("PPDDPM_CHROMIUM") or next(
        (shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    if exe is None:
        pytest.fail(f"the browser tests need Chromium, which is not installed; {INSTALL}",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright   # a test dependency (the dev extra)
    except ImportError:
        pytest.fail(f"the browser tests need Playwright's Python package; {INSTALL}",
                    pytrace=False)
    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
    yield chromium
    chromium.close()
    pw.stop()


def open_page(browser, url):
    page = browser.new_context(viewport={"width": 1000, "height": 640},
                               accept_downloads=True).new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_function("document.getElementById('model').options.length > 0")
    return page


def screenshot(page, name):
    folder = os.environ.get("PPDDPM_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, name), full_page=True)


def fill(page, model, sampler, steps, images, seed=0):
    page.select_option("#model", model)
    page.select_option("#sampler", sampler)
    page.fill("#steps", str(steps))
    page.fill("#num-images", str(images))
    page.fill("#seed", str(seed))


def wait_state(page, state):
    page.wait_for_function(f"document.getElementById('status').dataset.state === '{state}'")


def test_sample_watch_the_frames_and_download(site, browser):
    url, models, out = site
    page = open_page(browser, url)
    assert page.locator("#kind option").all_inner_texts() == ["Sample",   # the job kinds
                                                               "Image to image (SDEdit)"]
    assert page.is_visible("#kind-row") and not page.is_visible("#strength-row")
    page.select_option("#model", "cond.pdparam")   # a class and a guidance scale to choose
    assert page.is_visible("#class-row") and page.is_visible("#guidance-row")
    classes = page.locator("#class-label option").all_inner_texts()
    assert classes[2:] == ["0: cat", "1: dog", "2: owl"]
    fill(page, "uncond.pdparam", "ddpm", 200, 4, seed=7)
    assert not page.is_visible("#class-row") and not page.is_visible("#guidance-row")
    assert page.inner_text("#model-info") == ("unet, data set folder, 8x8, unconditional, "
                                              "41,899 parameters, T = 200")
    # every frame the page shows, with the job's state at that moment
    page.evaluate("""() => { window.seen = [];
        const text = (id) => document.getElementById(id);
        new MutationObserver(() => window.seen.push([+text('frame-count').textContent,
                                                     text('status').dataset.state]))
            .observe(text('frame-x0'), {attributes: true}); }""")
    page.click("#sample")
    page.wait_for_selector("#final-box:not([hidden])")
    assert page.inner_text("#status").startswith("Done: 4 images from uncond.pdparam")
    seen = page.evaluate("window.seen")
    while_running = sorted({count for count, state in seen if state == "running"})
    assert len(while_running) >= 2, seen     # frames arrived while it sampled ...
    assert [c for c, _ in seen] == sorted(c for c, _ in seen)
    assert seen[-1][0] == 25                 # ... up to the last of about 25
    assert page.evaluate("document.getElementById('final').naturalWidth") == 22   # 2x2 of 8 px
    screenshot(page, "sampling.png")

    job_id = page.get_attribute("#status", "data-job")
    with page.expect_download() as grid:
        page.click("#dl-grid")
    with page.expect_download() as npz:
        page.click("#dl-npz")
    with page.expect_download() as gif:
        page.click("#dl-gif")
    assert grid.value.suggested_filename == f"ppddpm-{job_id}-grid.png"
    with open(grid.value.path(), "rb") as fh:
        grid_bytes = fh.read()
    assert grid_bytes == (out / job_id / "grid.png").read_bytes()
    images = np.load(npz.value.path())["arr_0"]
    assert images.shape == (4, 8, 8, 3)
    tiles = np.asarray(Image.open(io.BytesIO(grid_bytes)).convert("RGB"))
    assert np.array_equal(tiles[2:10, 12:20], images[1])   # the grid shows the .npz's images
    assert Image.open(gif.value.path()).n_frames >= 2
    # nothing written outside the output folder: one folder per job there
    assert sorted(os.listdir(models.parent)) == ["models", "out", "outside.pdparam", "server.log"]
    assert sorted(os.listdir(models)) == ["cond.pdparam", "long.pdparam", "uncond.pdparam"]
    assert os.listdir(out) == [job_id]
    assert sorted(os.listdir(out / job_id)) == ["denoising.gif", "grid.png", "samples.npz",
                                                "xt_sequence.png"]
    page.context.close()


def test_two_tabs_the_second_waits_its_turn_and_stop(site, browser):
    url, _, out = site
    first, second = open_page(browser, url), open_page(browser, url)
    fill(first, "long.pdparam", "ddpm", 1000, 16)
    first.click("#sample")
    wait_state(first, "running")
    fill(second, "uncond.pdparam", "ddim", 10, 4)
    second.click("#sample")
    second.wait_for_function("document.getElementById('status').textContent.includes("
                             "'place 2 in the queue (1 job ahead of yours)')")
    assert first.get_attribute("#status", "data-state") == "running"
    first.wait_for_function("+document.getElementById('frame-count').textContent >= 2")
    screenshot(second, "queue.png")
    screenshot(first, "running.png")
    third = open_page(browser, url)                  # a tab closed while it waits ...
    fill(third, "uncond.pdparam", "ddim", 10, 4)
    third.click("#sample")
    third.wait_for_function("document.getElementById('status').textContent.includes("
                            "'place 3 in the queue (2 jobs ahead of yours)')")
    closed_job = third.get_attribute("#status", "data-job")
    third.context.close()
    stopped_job = first.get_attribute("#status", "data-job")
    first.click("#stop")
    wait_state(first, "stopped")
    assert re.match(r"Stopped: stopped after \d+ of 1000 steps; nothing was written",
                    first.inner_text("#status"))
    wait_state(second, "done")                      # the server went on with the next job
    assert not (out / stopped_job).exists()
    events = urllib.request.urlopen(f"{url.split('?')[0]}api/jobs/{closed_job}/events"
                                    f"?token={TOKEN}", timeout=10).read().decode()
    assert '"state": "stopped"' in events and "stopped before it started" in events
    assert not (out / closed_job).exists()          # ... left the queue: it never ran
    first.context.close()
    second.context.close()


def test_a_file_outside_the_models_folder_is_refused(site, browser):
    url, models, _ = site
    page = open_page(browser, url)
    fill(page, "uncond.pdparam", "ddim", 10, 4)
    wanted = {}

    def edit(route):   # the request, edited on its way out as a user could
        form = json.loads(route.request.post_data)
        form["model"] = wanted["model"]
        route.continue_(post_data=json.dumps(form))
    jobs_url = re.compile(r"/api/jobs(\?|$)")
    page.route(jobs_url, edit)
    for model in ("../outside.pdparam", str(models.parent / "outside.pdparam")):
        wanted["model"] = model
        page.click("#sample")
        page.wait_for_function("document.getElementById('message').textContent.includes("
                               "'is not one of the weights files under --models')")
        assert model in page.inner_text("#message")
        page.evaluate("document.getElementById('message').textContent = ''")
    page.unroute(jobs_url)
    page.fill("#steps", "0")                        # a bad value: one message, nothing queued
    page.click("#sample")
    page.wait_for_function("document.getElementById('message').textContent.includes("
                           "'steps must be between 1 and 4000, got 0')")
    page.context.close()
    base = url.split("?")[0]
    for path in ("api/info", "api/jobs/x/files/grid"):   # without the token: refused
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=10)
        assert refused.value.code == 401


def test_a_bad_upload_gets_one_message(site, browser):
    url, _, _ = site
    page = open_page(browser, url)
    page.select_option("#model", "uncond.pdparam")
    page.click("#upload-panel summary")
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (90, 120, 200)).save(buf, format="PNG")
    cases = [({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image\n"},
              "notes.txt is not an image"),
             ({"name": "photo.png", "mimeType": "image/png", "buffer": buf.getvalue()},
              "photo.png is 16x12, but uncond.pdparam makes 8x8 images; "
              "give an image of 8x8 pixels")]
    for upload, message in cases:
        page.set_input_files("#upload", files=[upload])
        page.wait_for_function("document.getElementById('upload-message').textContent.includes("
                               f"{json.dumps(message)})")
        assert page.get_attribute("#upload-message", "class") == "bad"
    screenshot(page, "bad_upload.png")
    good = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 200)).save(good, format="PNG")
    page.set_input_files("#upload", files=[{"name": "ok.png", "mimeType": "image/png",
                                            "buffer": good.getvalue()}])
    page.wait_for_function("document.getElementById('upload-message').textContent.includes("
                           "'ok.png: 8x8, ready for uncond.pdparam')")
    assert page.get_attribute("#upload-message", "class") == ""
    page.context.close()


def test_image_to_image_edits_the_upload(site, browser):
    """SDEdit from the page: the strength field appears with the mode, a job without an
    upload gets one message, and with one the edited images arrive."""
    url, _, out = site
    page = open_page(browser, url)
    fill(page, "uncond.pdparam", "ddim", 20, 4, seed=1)
    page.select_option("#kind", "img2img")
    assert page.is_visible("#strength-row") and page.is_visible("#upload")
    page.fill("#strength", "0.5")
    page.click("#sample")
    page.wait_for_function("document.getElementById('message').textContent.includes("
                           "'needs an image: upload one for uncond.pdparam first')")
    good = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 60, 30)).save(good, format="PNG")
    page.set_input_files("#upload", files=[{"name": "start.png", "mimeType": "image/png",
                                            "buffer": good.getvalue()}])
    page.wait_for_function("document.getElementById('upload-message').textContent.includes("
                           "'start.png: 8x8, ready for uncond.pdparam')")
    page.click("#sample")
    wait_state(page, "done")
    assert "SDEdit at strength 0.5" in page.inner_text("#status")
    assert page.is_visible("#final")
    job = page.get_attribute("#status", "data-job")
    assert (out / job / "grid.png").is_file() and (out / job / "samples.npz").is_file()
    screenshot(page, "img2img.png")
    page.context.close()
