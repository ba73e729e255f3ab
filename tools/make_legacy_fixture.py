"""Regenerate tests/fixtures/legacy_parity.npz from the original reproduction's own code.

The fixture pins ppddpm's legacy networks to the original PaddlePaddle reproduction
(github.com/Att100/PaddlePaddle-DDPM, models/unet.py and models/fpn.py): tiny
versions of both nets get deterministic weights (a function of each parameter's
name, see ``fill_weights``), and their outputs on a fixed input are stored. The test
rebuilds the same weights in ppddpm and must reproduce the outputs.

Usage: python tools/make_legacy_fixture.py --original-repo PATH_TO_CHECKOUT
(the checkout is only imported, nothing of it is copied).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from legacy_weights import fill_weights  # noqa: E402  (the same weights the test rebuilds)

UNET = dict(num_steps=10, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_levels=[1], dropout=0.1)
FPN = dict(num_steps=10, ch=32, ch_mult=(1, 2, 2), num_res_blocks=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--original-repo", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "fixtures", "legacy_parity.npz"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.original_repo))
    import paddle
    from models.fpn import FPN as OrigFPN
    from models.unet import UNet as OrigUNet

    rng = np.random.default_rng(1234)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    t = np.array([0, 7], dtype=np.int64)
    result = {"x": x, "t": t}
    for key, net in (("unet", OrigUNet(**UNET)), ("fpn", OrigFPN(**FPN))):
        result[key + "_init_table"] = net.time_emb.embedding_time[0].weight.numpy()
        shapes = [(n, list(p.shape)) for n, p in net.state_dict().items()]
        net.set_state_dict(fill_weights(shapes))
        net.eval()
        with paddle.no_grad():
            result[key + "_out"] = net(paddle.to_tensor(x), paddle.to_tensor(t)).numpy()
    np.savez(args.out, **result)
    print("wrote", os.path.abspath(args.out), {k: v.shape for k, v in result.items()})


if __name__ == "__main__":
    main()
