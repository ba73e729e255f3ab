"""Scalars and images to VisualDL when it is installed, otherwise scalars to a CSV file."""
from __future__ import annotations

import csv
import os

import numpy as np


class RunLogger:
    def __init__(self, log_dir: str, enabled: bool = True):
        self.enabled = enabled
        self.writer = None
        self._csv = None
        if not enabled:
            return
        os.makedirs(log_dir, exist_ok=True)
        try:
            from visualdl import LogWriter  # optional and heavy: imported only to log
            self.writer = LogWriter(logdir=log_dir)
            self.backend = "visualdl"
        except ImportError:
            self.backend = "csv"
            path = os.path.join(log_dir, "scalars.csv")
            new = not os.path.exists(path)
            self._csv = open(path, "a", newline="", encoding="utf-8")
            self._csv_writer = csv.writer(self._csv)
            if new:
                self._csv_writer.writerow(["step", "tag", "value"])

    def scalar(self, tag: str, value: float, step: int) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.add_scalar(tag=tag, value=float(value), step=step)
        else:
            self._csv_writer.writerow([step, tag, f"{float(value):.6g}"])

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
