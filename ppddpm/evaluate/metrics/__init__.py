"""Sample-quality metrics computed as the published tools compute them.

  fid.py              Fréchet distance (pytorch-fid's numerics), feature statistics
  inception_score.py  Inception Score over 10 splits (the original code's definition)
  precision_recall.py improved precision/recall, k=3 (Kynkäänniemi et al. 2019)
  kid.py              Kernel Inception Distance (Bińkowski et al. 2018)
  inception.py        the FID Inception v3 in Paddle (pytorch-fid's port of TF's graph)
  features.py, stats.py  image sources, Inception features, reference statistics files

Import from the modules (e.g. ``from ppddpm.evaluate.metrics.fid import frechet_distance``):
this file imports nothing, so the numpy-only metrics need no Paddle.
"""

# Images generated for FID and the other sample metrics in the papers' tables (Ho et al.
# 2020 table 1, Nichol & Dhariwal 2021): fewer give a biased, higher FID.
PUBLISHED_NUM_SAMPLES = 50000
