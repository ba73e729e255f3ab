"""Shared driver: run worker.py for each framework in its own venv, alternating, and report."""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _py(env_name, default):
    return os.environ.get(env_name) or (default if os.path.exists(default) else None)


# Each framework runs under its own interpreter (override with the environment variables).
PYTHONS = {
    "ppddpm": _py("PPDDPM_PYTHON", "/work/venv/bin/python") or sys.executable,
    "ppddpm-dygraph": _py("PPDDPM_PYTHON", "/work/venv/bin/python") or sys.executable,
    "ppddpm-dp2": _py("PPDDPM_PYTHON", "/work/venv/bin/python") or sys.executable,
    "ppddpm-static": _py("PPDDPM_PYTHON", "/work/venv/bin/python") or sys.executable,
    "ppddpm-onnx": _py("PPDDPM_PYTHON", "/work/venv/bin/python") or sys.executable,
    "diffusers": _py("PEER_TORCH_PYTHON", "/work/venv-ref/bin/python"),
    "diffusers-passive": _py("PEER_TORCH_PYTHON", "/work/venv-ref/bin/python"),
    "ppdiffusers": _py("PEER_PPDIFF_PYTHON", "/work/venv-ppdiff/bin/python"),
}


def run_worker(framework, task, threads, paddle_omp, timeout=3600, **kw):
    """One measurement in a fresh process; returns the worker's result dict (or an error)."""
    py = PYTHONS[framework]
    if py is None:
        return {"framework": framework, "error": "no interpreter (see benchmarks/README in RESULTS.md)"}
    cmd = [py, os.path.join(HERE, "worker.py"), "--framework", framework, "--task", task,
           "--threads", str(threads)]
    for k, v in kw.items():
        if v is not None:
            cmd += [f"--{k}", str(v)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    # Paddle reads OMP_NUM_THREADS at import (and sets 1 if unset); torch uses set_num_threads.
    # ppddpm trains on as many threads as torch (ppddpm.runtime.device.use_compute_threads, what
    # its CLI does); ppdiffusers keeps paddle_omp (Paddle's default 1, its fastest setting).
    env["OMP_NUM_THREADS"] = str(paddle_omp if framework == "ppdiffusers" else threads)
    if framework == "diffusers-passive":   # idle OpenMP threads sleep instead of spinning
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if framework == "ppddpm-static":   # oneDNN kernels in the static program; its own threads
        env.update(FLAGS_use_mkldnn="1", OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            out["wall_s"] = time.perf_counter() - t0
            return out
    tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return {"framework": framework, "error": f"exit {proc.returncode}: {tail}"}


def run_process(cmd, env_extra=None, timeout=3600):
    """A whole process: wall time, CPU time (user + system, all threads) and peak RSS."""
    env = dict(os.environ, PYTHONPATH=ROOT, **(env_extra or {}))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        return {"error": f"exit {status}: {(err.strip().splitlines() or ['?'])[-1]}"}
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": usage.ru_maxrss / 1024.0}


def alternate(frameworks, reps, log=print, **kw):
    """reps rounds; each round runs every framework once, the order rotating each round."""
    results = {f: [] for f in frameworks}
    for r in range(reps):
        order = frameworks[r % len(frameworks):] + frameworks[:r % len(frameworks)]
        for f in order:
            res = run_worker(f, **kw)
            results[f].append(res)
            msg = res.get("error") or (f"median {res['median_s']:.3f} s "
                                       f"(steps {', '.join(f'{x:.3f}' for x in res['times'])}), "
                                       f"peak RSS {res['maxrss_mb']:.0f} MiB")
            log(f"  round {r + 1}/{reps} {f:15s} {msg}")
    return results


def summarize(results):
    """Per framework: median of every timed step over all rounds, range of the round medians,
    peak RSS (max over rounds)."""
    out = {}
    for f, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            out[f] = {"error": runs[0].get("error") if runs else "not run"}
            continue
        steps = [t for r in ok for t in r["times"]]
        meds = [r["median_s"] for r in ok]
        out[f] = {"median_s": statistics.median(steps), "round_min": min(meds),
                  "cpu_median_s": statistics.median([c for r in ok for c in r["cpu_times"]]),
                  "round_max": max(meds), "rounds": len(ok), "steps": len(steps),
                  "maxrss_mb": max(r["maxrss_mb"] for r in ok), "params": ok[0].get("params"),
                  "extra": {**{k: ok[0][k] for k in ("version", "engine_setup_s", "exported")
                               if k in ok[0]}, **ok[0].get("extra", {})}}
    return out


def conditions():
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "?"
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, load average before the run {' '.join(load)}")


def table(summary, ref, title, mem=False):
    lines = [f"| {title} | median wall | range of round medians | / {ref} | median CPU time | "
             f"CPU / {ref} |" + (" peak RSS |" if mem else ""),
             "| --- | --- | --- | --- | --- | --- |" + (" --- |" if mem else "")]
    base = summary.get(ref, {}).get("median_s")
    cbase = summary.get(ref, {}).get("cpu_median_s")
    for f, s in summary.items():
        if "error" in s:
            lines.append(f"| {f} | failed: {s['error']} | | | | |" + (" |" if mem else ""))
            continue
        ratio = f"{s['median_s'] / base:.2f}" if base else "-"
        cratio = f"{s['cpu_median_s'] / cbase:.2f}" if cbase else "-"
        row = (f"| {f} | {s['median_s']:.3f} s | {s['round_min']:.3f}-{s['round_max']:.3f} s "
               f"({s['rounds']} rounds, {s['steps']} steps) | {ratio} | "
               f"{s['cpu_median_s']:.3f} s | {cratio} |")
        if mem:
            row += f" {s['maxrss_mb'] / 1024:.2f} GiB |"
        lines.append(row)
    return "\n".join(lines)


def save_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
