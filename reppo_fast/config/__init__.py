"""Training configuration: typed dataclasses (`fields`), per-(preset, algorithm) presets (`presets`) and
validation (`validation`).

`Config` holds what every algorithm and framework reads; the fields only one algorithm or only the torch
path reads live in its group (`cfg.reppo`, `cfg.ppo`, `cfg.torch`). Field names are unique across the
groups, so the command line stays flat (`--kl-target`, not `--reppo.kl-target`) and `Config.replace` takes
any field by its flat name. Every field's docstring is its `--help` text. Presets (docs/algorithms.md
section 7) set defaults; any field given on the command line overrides the preset. `validate` runs before
anything is compiled and names the field and the fix for every bad value.

Importing this package loads neither torch, jax nor the kernels: the kernel binding imports its tables of
choices from here, and the one machine-dependent choice (ManiSkill's `auto` preset) is passed in.
"""

from reppo_fast.config.fields import (
                                      BACKENDS,
                                      FRAMEWORKS,
                                      GROUPS,
                                      OPS,
                                      RENAMED_FIELDS,
                                      RENAMED_PRESETS,
                                      REPLACED_BY_PRECISION,
                                      Algo,
                                      Backend,
                                      Config,
                                      ConfigError,
                                      Framework,
                                      Op,
                                      PpoConfig,
                                      PresetName,
                                      ReppoConfig,
                                      RpoConfig,
                                      TorchConfig,
                                      flat_names,
)
from reppo_fast.config.presets import PRESETS, SUITE_PRESET, describe_presets, preset_config, resolve_preset
from reppo_fast.config.validation import validate, validate_choice, validate_world_size

__all__ = ["BACKENDS", "FRAMEWORKS", "GROUPS", "OPS", "PRESETS", "RENAMED_FIELDS", "RENAMED_PRESETS",
           "REPLACED_BY_PRECISION", "SUITE_PRESET", "Algo", "Backend", "Config", "ConfigError", "Framework",
           "Op", "PpoConfig", "PresetName", "ReppoConfig", "RpoConfig", "TorchConfig", "describe_presets",
           "flat_names", "preset_config", "resolve_preset", "validate", "validate_choice",
           "validate_world_size"]
