"""Session-wide test settings."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory):
    """Exports made by tests (the CLI samples with --engine auto) go to a temporary folder,
    not the user's ~/.cache/ppddpm/engines; subprocesses inherit the variable."""
    old = os.environ.get("PPDDPM_ENGINE_CACHE")
    os.environ["PPDDPM_ENGINE_CACHE"] = str(tmp_path_factory.mktemp("engine_cache"))
    yield os.environ["PPDDPM_ENGINE_CACHE"]
    if old is None:
        os.environ.pop("PPDDPM_ENGINE_CACHE", None)
    else:
        os.environ["PPDDPM_ENGINE_CACHE"] = old
