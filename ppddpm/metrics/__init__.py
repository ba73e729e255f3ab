"""Sample-quality metrics computed as the published tools compute them.

  fid.py              Fréchet distance (pytorch-fid's numerics), feature statistics
  inception_score.py  Inception Score over 10 splits (the original code's definition)
  precision_recall.py improved precision/recall, k=3 (Kynkäänniemi et al. 2019)
  kid.py              Kernel Inception Distance (Bińkowski et al. 2018)
  inception.py        the FID Inception v3 in Paddle (pytorch-fid's port of TF's graph)
  pth_reader.py       PyTorch .pth state dicts read without PyTorch
  features.py, stats.py  image sources, Inception features, reference statistics files

This package imports nothing heavy by itself; the numpy-only metrics need no Paddle.
"""
from .fid import MetricError, feature_statistics, frechet_distance  # noqa: F401
from .inception_score import inception_score  # noqa: F401
from .kid import kernel_inception_distance  # noqa: F401
from .precision_recall import precision_recall  # noqa: F401
