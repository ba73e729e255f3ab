"""The README's set-up lines are what CI runs, and its Python example runs."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return fh.read()


def test_setup_lines_match_ci():
    block = re.search(r"## Set up\s+```bash\n(.*?)```", readme(), re.S).group(1).strip().splitlines()
    assert block == ['pip install -e ".[dev,onnx,web]"', "python -m pytest"]
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        ci = [line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#")]
    assert block[0] in ci and block[1] in ci
    assert ci.index(block[0]) < ci.index(block[1])


def test_python_example_runs():
    code = re.search(r"```python\n(.*?)```", readme(), re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["images"].shape == [8, 3, 32, 32]
    assert float(namespace["images"].abs().max()) <= 1.0
    assert len(namespace["frames"]) == 20
