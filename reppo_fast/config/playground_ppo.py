"""mujoco_playground's per-task Brax-PPO settings for DM Control, as our flat config fields: what PPO's `dmc`
preset (presets.py) takes on top of its own values, which are playground's base ones.

Read from the installed playground (dm_control_suite_params.brax_ppo_config), not copied: its per-task table
(e.g. BallInCup and FingerSpin discount 0.95, AcrobotSwingup*, Swimmer* and WalkerRun train 100M steps) is
whatever that version says. Importing playground loads jax and MJX, so this module is imported only for a
PPO run on a DM Control task.
"""

from __future__ import annotations

from reppo_fast.config.fields import ConfigError

# Brax PPO's settings that vary per task -> our flat field names. Both count the same things: Brax's
# discounting and our gamma are per agent step, num_timesteps and total_steps are physics steps.
BRAX_TO_FIELDS: dict[str, str] = {
    "discounting": "gamma",
    "num_updates_per_batch": "num_epochs",
    "num_timesteps": "total_steps",
    "action_repeat": "action_repeat",
}
# A task brax_ppo_config has no override for, whose config is therefore playground's base.
BASE_TASK = "CartpoleBalance"
# The one hand-written entry. playground 0.2.0 tests env_name == "PendulumSwingUp", but the registered task
# is "PendulumSwingup": brax_ppo_config("PendulumSwingup") falls through to the base and the intended
# override (4x action repeat with 4 updates per batch) never applies. Used only while playground gives
# PendulumSwingup nothing.
PENDULUM_SWINGUP = {"action_repeat": 4, "num_epochs": 4}


def _brax_ppo_config(env_name: str):
    try:
        from mujoco_playground.config import dm_control_suite_params
    except ImportError as err:
        raise ConfigError("PPO's dmc preset reads its per-task settings from mujoco_playground, which is not "
                          "installed: `pip install playground==0.2.0`") from err
    return dm_control_suite_params.brax_ppo_config(env_name)


def brax_ppo_overrides(env_name: str) -> dict[str, object]:
    """The flat config fields where playground's Brax-PPO config for DM Control task `env_name` (a canonical
    name) differs from its base; {} for a task without overrides (e.g. CartpoleSwingup)."""
    task, base = _brax_ppo_config(env_name), _brax_ppo_config(BASE_TASK)
    overrides = {field: task[key] for key, field in BRAX_TO_FIELDS.items() if task[key] != base[key]}
    if env_name == "PendulumSwingup" and not overrides:
        overrides = dict(PENDULUM_SWINGUP)
    return overrides
