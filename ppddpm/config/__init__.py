"""The configuration: the bottom layer, which every other layer reads and which reads none.

``schema``: the dataclasses, YAML files and ``-o`` overrides; ``checks``: the range of every
key; ``names``: the registries of names a value is chosen from; ``flags``: which
command-line flag sets which key.
"""
from ..errors import ConfigError
from .checks import parse_num_images, validate
from .flags import label
from .schema import (Config, DataConfig, DiffusionConfig, ModelConfig, SampleConfig, TrainConfig,
                     apply_overrides, load_config, parse_bool, set_value)

__all__ = ["Config", "ConfigError", "DataConfig", "DiffusionConfig", "ModelConfig", "SampleConfig",
           "TrainConfig", "apply_overrides", "label", "load_config", "parse_bool", "parse_num_images",
           "set_value", "validate"]
