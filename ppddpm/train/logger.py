"""Scalars and images to VisualDL when it is installed, otherwise scalars to a CSV file.

Every row carries the run's id (``new_run_id``; a resumed run keeps the id its checkpoint
holds), so runs sharing one log folder stay apart: the CSV's columns are
``step,tag,value,run``, and VisualDL writes each run to its own sub-folder ``{log_dir}/{run}``,
which it shows as one run. A ``scalars.csv`` written by an older version (without the ``run``
column) is left alone; rows then go to ``scalars_{run}.csv``.
"""
from __future__ import annotations

import csv
import os
import secrets
import time

import numpy as np

CSV_HEADER = ["step", "tag", "value", "run"]


def new_run_id(prefix: str) -> str:
    """``{prefix}-{UTC date}-{time}-{4 hex digits}``: readable, and two runs started in the
    same second still differ."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def csv_path(log_dir: str, run_id: str) -> str:
    """``scalars.csv``, unless it exists with other columns (an older version's file)."""
    path = os.path.join(log_dir, "scalars.csv")
    if not os.path.exists(path):
        return path
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), None)
    return path if header == CSV_HEADER else os.path.join(log_dir, f"scalars_{run_id}.csv")


class RunLogger:
    def __init__(self, log_dir: str, run_id: str = "run", enabled: bool = True):
        self.enabled, self.run_id = enabled, run_id
        self.writer = None
        self._csv = None
        if not enabled:
            return
        os.makedirs(log_dir, exist_ok=True)
        try:
            from visualdl import LogWriter  # optional and heavy: imported only to log
            self.writer = LogWriter(logdir=os.path.join(log_dir, run_id))
            self.backend = "visualdl"
        except ImportError:
            self.backend = "csv"
            self.path = csv_path(log_dir, run_id)
            new = not os.path.exists(self.path)
            self._csv = open(self.path, "a", newline="", encoding="utf-8")
            self._csv_writer = csv.writer(self._csv)
            if new:
                self._csv_writer.writerow(CSV_HEADER)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.add_scalar(tag=tag, value=float(value), step=step)
        else:
            self._csv_writer.writerow([step, tag, f"{float(value):.6g}", self.run_id])

    def image(self, tag: str, image_hwc: np.ndarray, step: int) -> None:
        """Images go to VisualDL; without it the PNG in sample_dir is the record."""
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag=tag, img=image_hwc, step=step)

    def flush(self) -> None:
        if self._csv is not None:
            self._csv.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._csv is not None:
            self._csv.close()
            self._csv = None
