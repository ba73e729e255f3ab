"""The CPU thread policy (ppddpm/runtime/threads.py)."""


def test_compute_threads_policy(monkeypatch):
    from ppddpm.runtime import threads
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "USER_OMP", None)
    assert threads.compute_threads() == 8
    assert threads.compute_threads(local_ranks=2) == 4    # two ranks share the machine
    assert threads.compute_threads(local_ranks=16) == 1
    monkeypatch.setattr(threads, "USER_OMP", "3")          # the user's OMP_NUM_THREADS wins
    assert threads.compute_threads(local_ranks=2) == 3


def test_users_omp_is_seen_even_when_paddle_was_imported_first():
    """Paddle writes OMP_NUM_THREADS=1 at import when it is unset; a user's own 1 must
    still count as the user's (it did not, and a 1-thread benchmark ran on 2 threads)."""
    import subprocess
    import sys
    code = ("import paddle, ppddpm.runtime.threads as t; print(t.USER_OMP, t.compute_threads())")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    unset = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    ones = subprocess.run([sys.executable, "-c", code], env=dict(env, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, check=True).stdout.split()
    from ppddpm.runtime.threads import available_cores
    assert unset == ["None", str(available_cores())]
    assert ones == ["1", "1"]
