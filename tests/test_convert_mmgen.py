"""`python -m ppddpm.convert --from mmgen`: an mmgeneration Improved-DDPM checkpoint (an mmcv
training checkpoint, mmgeneration's own parameter names, EMA and raw copies) becomes an
adm inference file whose chain is improved-diffusion's on the same weights.

mmgeneration's DenoisingUnet (mmgen/models/architectures/ddpm) runs improved-diffusion's
blocks in the same order under other names; the file here holds the improved_cifar10
fixture case's weights under those names (mmgeneration itself needs mmcv, so the fixture's
reference outputs are improved-diffusion's)."""
import re
import zipfile

import numpy as np
import paddle

from helpers_adm import case_shapes, load_fixture
from helpers_inception import write_pth
from legacy_weights import fill_weights
from ppddpm import load_pretrained
from ppddpm.convert.__main__ import main as convert_main
from ppddpm.diffusion.respace import respace

DATA, META = load_fixture()
# upstream's names -> mmgeneration's (DenoisingUnet, DenoisingResBlock, NormWithEmbedding,
# MultiHeadAttention, DenoisingDownsample, TimeEmbedding, the ConvModule "out")
TO_MMGEN = [(r"^time_embed\.", "time_embedding.blocks."), (r"^label_emb\.", "label_embedding."),
            (r"^input_blocks\.", "in_blocks."), (r"^middle_block\.", "mid_blocks."),
            (r"^output_blocks\.", "out_blocks."), (r"\.in_layers\.", ".conv_1."),
            (r"\.out_layers\.0\.", ".norm_with_embedding.norm."),
            (r"\.emb_layers\.", ".norm_with_embedding.embedding_layer."),
            (r"\.out_layers\.3\.", ".conv_2.2."), (r"\.skip_connection\.", ".shortcut."),
            (r"\.proj_out\.", ".proj."), (r"\.op\.", ".downsample."),
            (r"^out\.0\.", "out.gn."), (r"^out\.2\.", "out.conv.")]
CONFIG_TEXT = ("model = dict(type='BasicGaussianDiffusion', num_timesteps=4000, "
               "betas_cfg=dict(type='cosine'), denoising=dict(type='DenoisingUnet', "
               "image_size=32, base_channels=32, resblocks_per_downsample=2, "
               "attention_res=[16, 8], use_scale_shift_norm=True, dropout=0.3, num_heads=4, "
               "use_rescale_timesteps=True, output_cfg=dict(mean='eps', var='learned_range')))")


def mmgen_name(key):
    for pattern, repl in TO_MMGEN:
        key = re.sub(pattern, repl, key, count=1)
    return key


def write_mmgen_checkpoint(path):
    ema = fill_weights([(k, tuple(s)) for k, s in case_shapes(META, "improved_cifar10")])
    state = {}
    for k, v in ema.items():
        state["denoising." + mmgen_name(k)] = np.zeros_like(v)      # the raw copy: not used
        state["denoising_ema." + mmgen_name(k)] = v
    write_pth(str(path), {"meta": {"mmgen_version": "0.7.3", "config": CONFIG_TEXT, "iter": 500000},
                          "state_dict": state})


def test_mmgen_checkpoint_converts_to_improved_diffusions_chain(tmp_path):
    src = tmp_path / "ddpm_cosine_hybird_timestep-4k_drop0.3_cifar10_32x32.pth"
    write_mmgen_checkpoint(src)
    out = str(tmp_path / "mmgen.safetensors")
    assert convert_main(["--from", "mmgen", "--src", str(src), "--out", out]) == 0
    model, diffusion, cfg = load_pretrained(out)
    m = cfg.model
    assert (m.arch, m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.num_heads) == (
        "adm", 32, [1, 2, 2, 2], 2, [16, 8], 4)
    assert m.learn_sigma and m.use_scale_shift_norm and m.rescale_timesteps and m.dropout == 0.3
    assert cfg.diffusion.num_diffusion_steps == 4000 and cfg.diffusion.beta_schedule == "cosine"
    name = "improved_cifar10"
    spaced = respace(diffusion, "ddim50")
    with paddle.no_grad():
        pmv = spaced.p_mean_variance(model, paddle.to_tensor(DATA[f"{name}/x"]),
                                     paddle.to_tensor(DATA[f"{name}/pmv_t"]))
    want = DATA[f"{name}/pmv_mean"]
    assert np.abs(pmv["mean"].numpy() - want).max() <= 1e-5 * np.abs(want).max()


def test_a_file_without_mmgen_weights_or_with_code_is_one_line(tmp_path, capsys):
    src = tmp_path / "other.pth"
    write_pth(str(src), {"state_dict": {"generator.conv.weight": np.ones((2, 2), np.float32)}})
    assert convert_main(["--from", "mmgen", "--src", str(src), "--out", str(tmp_path / "o.pdparam")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no 'denoising_ema.*' weights" in err
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}".encode()
    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02cposix\nsystem\nX" + len(cmd).to_bytes(4, "little")
                    + cmd + b"\x85R.")
    assert convert_main(["--from", "mmgen", "--src", str(evil), "--out", str(tmp_path / "o.pdparam")]) == 2
    assert "posix.system" in capsys.readouterr().err and not marker.exists()
