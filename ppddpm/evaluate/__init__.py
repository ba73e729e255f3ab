"""Evaluation: ``--mode eval`` (FID, IS, precision/recall, KID; bits/dim) and ``--mode
fid_stats``, the resumable chunk runner under them, and the metrics (``metrics/``)."""
from .metrics import PUBLISHED_NUM_SAMPLES
from .resumable import generate_resumable
from .run import (EvalOptions, checkpoint_iteration, compute_metrics, run_bpd, run_eval,
                  run_fid_stats)

__all__ = ["PUBLISHED_NUM_SAMPLES", "EvalOptions", "checkpoint_iteration", "compute_metrics",
           "generate_resumable", "run_bpd", "run_eval", "run_fid_stats"]
