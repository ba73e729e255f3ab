"""improved-diffusion's and guided-diffusion's command-line flags -> a ppddpm Config.

``--flags`` takes MODEL_FLAGS and DIFFUSION_FLAGS exactly as upstream's READMEs write them
(``--num_channels 128 --learn_sigma True ...``); what is left out takes upstream's default
(script_util.py: ``model_and_diffusion_defaults`` and ``classifier_defaults``), which
differ between the two code bases (improved-diffusion rescales timesteps and learned
sigmas by default, guided-diffusion does not).
"""
from __future__ import annotations

import shlex
from typing import Dict, List, Tuple

from ..config import Config, ConfigError, validate

NUM_CLASSES = 1000   # upstream's class-conditional models are ImageNet's

DIFFUSION_DEFAULTS = dict(learn_sigma=False, diffusion_steps=1000, noise_schedule="linear",
                          timestep_respacing="", use_kl=False, predict_xstart=False,
                          rescale_timesteps=False, rescale_learned_sigmas=False)
DEFAULTS = {
    "improved-diffusion": dict(
        DIFFUSION_DEFAULTS, image_size=64, num_channels=128, num_res_blocks=2, num_heads=4,
        num_heads_upsample=-1, attention_resolutions="16,8", dropout=0.0, sigma_small=False,
        class_cond=False, rescale_timesteps=True, rescale_learned_sigmas=True,
        use_scale_shift_norm=True),
    "guided-diffusion": dict(
        DIFFUSION_DEFAULTS, image_size=64, num_channels=128, num_res_blocks=2, num_heads=4,
        num_heads_upsample=-1, num_head_channels=-1, attention_resolutions="16,8",
        channel_mult="", dropout=0.0, class_cond=False, use_scale_shift_norm=True,
        resblock_updown=False, use_new_attention_order=False),
}
CLASSIFIER_DEFAULTS = dict(DIFFUSION_DEFAULTS, image_size=64, classifier_width=128,
                           classifier_depth=2, classifier_attention_resolutions="32,16,8",
                           classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                           classifier_pool="attention")
# Upstream's channel_mult for each image size (script_util.create_model / create_classifier).
CHANNEL_MULT = {
    "improved-diffusion": {256: (1, 1, 2, 2, 4, 4), 64: (1, 2, 3, 4), 32: (1, 2, 2, 2)},
    "guided-diffusion": {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4),
                         128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)},
}
# Flags of upstream's scripts that do not change the network or the diffusion: accepted, so
# that whole README lines can be pasted, and not used (fp16 models are stored in fp32); so
# are a classifier's flags when converting a model, and a model's when converting a classifier
# (classifier_sample.py takes both).
IGNORED = {"use_fp16", "classifier_use_fp16", "use_checkpoint", "batch_size", "num_samples",
           "model_path", "classifier_path", "classifier_scale", "clip_denoised", "lr",
           "microbatch", "ema_rate", "log_interval", "save_interval", "resume_checkpoint",
           "fp16_scale_growth", "schedule_sampler", "weight_decay", "lr_anneal_steps",
           "data_dir", "val_data_dir", "iterations", "anneal_lr", "noised", "eval_interval",
           "use_ddim"}
TRUE, FALSE = ("yes", "true", "t", "y", "1"), ("no", "false", "f", "n", "0")


def parse_flags(text: str, family: str, classifier: bool = False) -> Dict[str, object]:
    """``--key value`` pairs over upstream's defaults, typed as upstream's argparse types them."""
    defaults = dict(CLASSIFIER_DEFAULTS if classifier else DEFAULTS[family])
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise ConfigError(f"--flags {text!r} cannot be read: {exc}") from None
    values, extra = dict(defaults), {}
    while words:
        flag = words.pop(0)
        if not flag.startswith("--") or not words or words[0].startswith("--"):
            raise ConfigError(f"--flags: expected '--name value' pairs as in upstream's README, "
                              f"got {flag!r}{'' if words else ' without a value'}")
        key, raw = flag[2:].replace("-", "_"), words.pop(0)
        other_net = (key.startswith("classifier_") if not classifier
                     else key in DEFAULTS["guided-diffusion"])   # the other network's flags
        if key in IGNORED or (other_net and key not in defaults):
            extra[key] = raw
            continue
        if key not in defaults:
            kind = "classifier" if classifier else "model"
            raise ConfigError(f"--flags: {flag} is not one of {family}'s {kind} or diffusion flags; "
                              f"known: {', '.join('--' + k for k in sorted(defaults))}")
        values[key] = _typed(raw, defaults[key], flag)
    values["_ignored"] = extra
    return values


def _typed(raw: str, default, flag: str):
    if isinstance(default, bool):
        if raw.lower() in TRUE or raw.lower() in FALSE:
            return raw.lower() in TRUE
        raise ConfigError(f"--flags: {flag} takes True or False, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"--flags: {flag} takes an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"--flags: {flag} takes a number, got {raw!r}") from None
    return raw


def _ints(text: str, flag: str) -> List[int]:
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--flags: {flag} takes comma-separated integers, got {text!r}") from None


def channel_widths(values: Dict, family: str, classifier: bool) -> Tuple[int, List[int], int]:
    """(ch, integer ch_mult, time_embed_ch) for upstream's num_channels and channel_mult;
    fractions (the 512 model's 0.5) become a smaller ch and a wider time embedding."""
    size = values["image_size"]
    text = "" if classifier else values.get("channel_mult", "")
    if text:
        try:
            mult = tuple(int(v) for v in text.split(","))      # upstream: int(ch_mult)
        except ValueError:
            mult = ()
        if not mult or min(mult) < 1:
            raise ConfigError(f"--flags: --channel_mult takes comma-separated positive "
                              f"integers, got {text!r}")
    else:
        table = CHANNEL_MULT["guided-diffusion" if classifier else family]
        if size not in table:
            raise ConfigError(f"--flags: --image_size {size} has no default channel_mult in "
                              f"{family} (it knows {sorted(table)}); give --channel_mult")
        mult = table[size]
    return integer_widths(mult, values["classifier_width" if classifier else "num_channels"])


def integer_widths(mult, model_ch: int) -> Tuple[int, List[int], int]:
    """Upstream's widths int(m * model_ch) as ch * (integer ch_mult), and model_ch."""
    widths = [int(m * model_ch) for m in mult]
    ch = widths[0]
    for w in widths[1:]:
        while w % ch:
            ch -= 1
    return ch, [w // ch for w in widths], model_ch


def attention_resolutions(text: str, size: int, flag: str) -> List[int]:
    """Upstream turns each resolution r into the downsampling rate size // r."""
    out = []
    for r in _ints(text, flag):
        if r < 1:
            raise ConfigError(f"--flags: {flag} takes positive resolutions, got {text!r}")
        out.append(size // max(1, size // r))
    return out


def flags_config(values: Dict, family: str, classifier: bool = False) -> Config:
    """The Config of the network and diffusion that upstream's flags describe."""
    cfg = Config()
    m, d = cfg.model, cfg.diffusion
    size = values["image_size"]
    m.ch, m.ch_mult, model_ch = channel_widths(values, family, classifier)
    m.time_embed_ch = None if model_ch == m.ch else model_ch
    m.resolution = cfg.data.image_size = size
    m.norm_groups, m.norm_eps, m.rescale_timesteps = 32, 1e-5, values["rescale_timesteps"]
    if classifier:
        m.arch, m.num_classes = "adm_classifier", NUM_CLASSES
        m.num_res_blocks = values["classifier_depth"]
        m.attn_resolutions = attention_resolutions(values["classifier_attention_resolutions"],
                                                   size, "--classifier_attention_resolutions")
        m.num_head_channels, m.num_heads = 64, 1
        m.use_scale_shift_norm = values["classifier_use_scale_shift_norm"]
        m.resblock_updown = values["classifier_resblock_updown"]
        m.classifier_pool, m.dropout = values["classifier_pool"], 0.0
    else:
        m.arch = "adm"
        m.num_res_blocks, m.dropout = values["num_res_blocks"], values["dropout"]
        m.attn_resolutions = attention_resolutions(values["attention_resolutions"], size,
                                                   "--attention_resolutions")
        m.num_heads, m.num_heads_upsample = values["num_heads"], values["num_heads_upsample"]
        m.num_head_channels = values.get("num_head_channels", -1)
        m.use_scale_shift_norm = values["use_scale_shift_norm"]
        m.resblock_updown = values.get("resblock_updown", False)
        m.use_new_attention_order = values.get("use_new_attention_order", False)
        m.num_classes = NUM_CLASSES if values["class_cond"] else None
        m.learn_sigma = values["learn_sigma"]
    cfg.data.dataset = "cifar10" if size == 32 else "folder"
    if size != 32:
        cfg.data.data_dir = "./datasets/images"
    steps = values["diffusion_steps"]
    d.num_diffusion_steps = steps
    schedule = values["noise_schedule"]
    if schedule not in ("linear", "cosine"):
        raise ConfigError(f"--flags: --noise_schedule takes linear or cosine, got {schedule!r}")
    d.beta_schedule = schedule
    scale = 1000.0 / steps   # upstream's linear schedule is Ho's, stretched to T steps
    d.beta_start, d.beta_end = scale * 1e-4, scale * 0.02
    d.mean_type = "x0" if values["predict_xstart"] else "eps"
    learned = m.learn_sigma
    d.var_type = ("learned_range" if learned else
                  "fixed_small" if values.get("sigma_small") else "fixed_large")
    d.loss_type = ("rescaled_kl" if values["use_kl"] else "mse" if not learned else
                   "hybrid" if values["rescale_learned_sigmas"] else "mse_vb")
    if values["timestep_respacing"]:
        cfg.sample.respacing = values["timestep_respacing"]
    if values["_ignored"].get("use_ddim", "").lower() in TRUE:
        cfg.sample.sampler = "ddim"
    try:
        validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f"--flags describe a network ppddpm cannot build: {exc}") from None
    return cfg
