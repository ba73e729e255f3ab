"""Data parallelism on the CPU with 2 gloo processes (paddle.distributed.spawn)."""
import os

import numpy as np
import paddle
import paddle.distributed as dist

from dist_workers import denoise, denoise_with_classifier, tiny_config, train_tiny

from ppddpm.diffusion import GaussianDiffusion
from ppddpm.models import build_model
from ppddpm.convert.pretrained import save_inference_file


def load(path):
    return dict(np.load(path))


def assert_same_weights(a, b, atol):
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=atol, rtol=0, err_msg=k)


def test_two_ranks_on_half_batches_equal_one_process(tmp_path):
    check_rank_independence_and_resume(tmp_path)


def test_conditional_training_with_label_dropout_is_rank_independent_and_resumes(tmp_path):
    # p_uncond 0.5: some of the 4 labels of each batch become the "no label" id, each by its
    # example's own stream, so the halves of 2 ranks drop exactly the labels 1 process drops.
    check_rank_independence_and_resume(tmp_path, p_uncond=0.5)
    # the dropout changed the update (else this test would hold without labels too)
    train_tiny(str(tmp_path / "no_dropout"), 4, 1, 2, p_uncond=0.0)
    a = load(tmp_path / "single" / "weights_rank0_of1.npz")
    b = load(tmp_path / "no_dropout" / "weights_rank0_of1.npz")
    assert np.abs(a["label_emb.weight"] - b["label_emb.weight"]).max() > 1e-6


def check_rank_independence_and_resume(tmp_path, p_uncond=None, iters=2):
    dist.spawn(train_tiny, args=(str(tmp_path), 4, 1, iters, None, "off", p_uncond), nprocs=2,
               backend="gloo")
    train_tiny(str(tmp_path / "single"), 4, 1, iters, p_uncond=p_uncond)
    r0 = load(tmp_path / "weights_rank0_of2.npz")
    r1 = load(tmp_path / "weights_rank1_of2.npz")
    one = load(tmp_path / "single" / "weights_rank0_of1.npz")
    assert_same_weights(r0, r1, atol=0)          # the ranks hold identical weights and EMA
    assert_same_weights(r0, one, atol=1e-6)      # == one process on the full batch
    assert np.abs(r0["losses"] - one["losses"]).max() < 1e-6
    # the weights moved (two real updates happened)
    init = tiny_config(str(tmp_path), p_uncond=p_uncond)
    paddle.seed(0)
    start = build_model(init.model).state_dict()
    assert max(np.abs(r0[k] - v.numpy()).max() for k, v in start.items()) > 1e-4
    # Only rank 0 wrote files; each rank was given its own folders.
    assert sorted(os.listdir(tmp_path / "rank0" / "ckpts")) == sorted(
        [f"cifar10_ckpt_iter_{i}.pdparam" for i in range(1, iters + 1)]
        + [f"ddpm_cifar10_i{iters}.pdparam", f"ddpm_cifar10_i{iters}_ema.pdparam"])
    assert not (tmp_path / "rank1").exists()
    # Resume the 2-rank checkpoint of the middle iteration in one process: the rest matches.
    train_tiny(str(tmp_path / "resumed"), 4, 1, iters, p_uncond=p_uncond,
               resume_from=str(tmp_path / "rank0" / "ckpts" / f"cifar10_ckpt_iter_{iters // 2}.pdparam"))
    resumed = load(tmp_path / "resumed" / "weights_rank0_of1.npz")
    resumed.pop("losses"), r0.pop("losses")
    assert_same_weights(resumed, r0, atol=1e-6)


def test_gradient_accumulation_equals_the_full_batch(tmp_path):
    train_tiny(str(tmp_path / "full"), 4, 1, 2)
    train_tiny(str(tmp_path / "accum"), 4, 2, 2)
    assert_same_weights(load(tmp_path / "full" / "weights_rank0_of1.npz"),
                        load(tmp_path / "accum" / "weights_rank0_of1.npz"), atol=1e-6)


def test_distributed_sampling_gives_the_single_process_images(tmp_path):
    cfg = tiny_config(str(tmp_path))
    paddle.seed(1)
    model = build_model(cfg.model)
    for p in model.parameters():  # non-zero output layers, so the images depend on the net
        p.set_value(paddle.randn(p.shape) * 0.05)
    weights = str(tmp_path / "tiny.pdparam")
    save_inference_file(weights, model.state_dict(),
                        GaussianDiffusion.from_config(cfg.diffusion).betas, {}, cfg)
    common = ["--mode", "denoise", "--pretrained_path", weights, "--num_images", "5-1-5",
              "--batchsize", "2", "--save_npz", "True", "--quiet", "--sampler", "ddim", "--stride", "10",
              "--sample_postfix", "ddim_cifar10_test"]   # a 16x16 file is named after itself
    dist.spawn(denoise, args=(common + ["--sample_dir", str(tmp_path / "two")],), nprocs=2, backend="gloo")
    denoise(common + ["--sample_dir", str(tmp_path / "one")])
    two = np.load(tmp_path / "two" / "ddim_cifar10_test.npz")["arr_0"]
    one = np.load(tmp_path / "one" / "ddim_cifar10_test.npz")["arr_0"]
    assert two.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(two, one)
    assert len({im.tobytes() for im in one}) == 5  # five different images


def test_classifier_guided_sampling_on_two_ranks_gives_the_single_process_images(tmp_path):
    """Random classes (no --class_label) are the same list on every rank."""
    cfg = tiny_config(str(tmp_path))
    paddle.seed(1)
    model = build_model(cfg.model)
    for p in model.parameters():
        p.set_value(paddle.randn(p.shape) * 0.05)
    weights = str(tmp_path / "tiny.pdparam")
    save_inference_file(weights, model.state_dict(),
                        GaussianDiffusion.from_config(cfg.diffusion).betas, {}, cfg)
    (tmp_path / "brightness.pdparam").write_bytes(b"read as helpers_classifier's classifier")
    common = ["--mode", "denoise", "--pretrained_path", weights, "--num_images", "5-1-5",
              "--batchsize", "2", "--save_npz", "True", "--quiet", "--sampler", "ddim",
              "--stride", "10", "--sample_postfix", "ddim_cifar10_test",
              "--classifier_path", str(tmp_path / "brightness.pdparam"),
              "--classifier_scale", "20"]
    dist.spawn(denoise_with_classifier, args=(common + ["--sample_dir", str(tmp_path / "two")],),
               nprocs=2, backend="gloo")
    denoise_with_classifier(common + ["--sample_dir", str(tmp_path / "one")])
    denoise(common[:-4] + ["--sample_dir", str(tmp_path / "plain")])
    two = np.load(tmp_path / "two" / "ddim_cifar10_test.npz")["arr_0"]
    one = np.load(tmp_path / "one" / "ddim_cifar10_test.npz")["arr_0"]
    plain = np.load(tmp_path / "plain" / "ddim_cifar10_test.npz")["arr_0"]
    np.testing.assert_array_equal(two, one)
    assert np.abs(one.astype(int) - plain).max() > 20   # the classifier did pull
