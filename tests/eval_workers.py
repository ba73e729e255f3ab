"""Run in each rank by paddle.distributed.spawn for tests/test_eval_cli.py (importable)."""
import numpy as np


def resumable_generation(folder, weights, n, batch, out):
    """generate_resumable in this rank; rank 0 saves the assembled images to ``out``; each
    rank writes the index offsets it generated to ``out``.rank{r}.txt."""
    import ppddpm.samplers.batched as sampling
    from ppddpm.evaluate import generate_resumable
    from ppddpm.convert.pretrained import load_pretrained
    from ppddpm.samplers import build_sampler
    from ppddpm.runtime.dist import init_distributed

    _, rank = init_distributed()
    real, done = sampling.generate, []

    def recording(model, sampler, num, shape, batch_size, seed=0, index_offset=0, progress=True):
        done.append(index_offset)
        return real(model, sampler, num, shape, batch_size, seed, index_offset, progress)
    sampling.generate = recording
    model, diffusion, cfg = load_pretrained(weights)
    sampler = build_sampler(diffusion, cfg.sample)
    images = generate_resumable(model, sampler, n, [3, 16, 16], batch, seed=0, folder=folder,
                                meta={"test": 1}, progress=False)
    with open(f"{out}.rank{rank}.txt", "w") as fh:
        fh.write(" ".join(map(str, done)))
    if images is not None:
        np.save(out, images)
