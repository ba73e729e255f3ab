"""The engine kept warm between jobs: the last model loaded stays loaded (its network in
its engine, whose export the engine cache keeps on disk), so a second job on the same file
starts sampling at once. Loading goes through the same set-up as ``--mode denoise``
(``pipeline.prepare_sampling``)."""
from __future__ import annotations

import gc
from typing import NamedTuple, Optional, Tuple

from ..config import Config
from ..diffusion import GaussianDiffusion
from ..pipeline import prepare_sampling
from .catalog import ModelEntry


class LoadedModel(NamedTuple):
    model: object                 # model(x, t, y=None): an engine or the dygraph network
    diffusion: GaussianDiffusion  # the file's own chain (samplers are built on it per job)
    shape: list
    file_config: Config
    warning: Optional[str]


class WarmModel:
    """Holds one loaded model; ``get`` reloads only when another file (or a changed one) is
    asked for. Used by the one worker thread only."""

    def __init__(self, engine: str = "auto"):
        self.engine = engine
        self.key: Optional[Tuple] = None
        self.loaded: Optional[LoadedModel] = None
        self.loads = 0   # how many times a file was read (the page shows it; tests check it)

    def get(self, entry: ModelEntry, stamp: Tuple) -> LoadedModel:
        key = (entry.path, stamp)
        if key != self.key:
            self.key, self.loaded = None, None
            gc.collect()   # free the last model before the next one loads
            setup = prepare_sampling(Config(), entry.path, engine=self.engine)
            # the default sample settings build a plain DDPM sampler on the file's chain
            self.loaded = LoadedModel(setup.model, setup.sampler.diffusion, list(setup.shape),
                                      setup.file_config, setup.warning)
            self.key = key
            self.loads += 1
        return self.loaded
