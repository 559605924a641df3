"""One ManiSkill3 task object (N parallel envs in this process) behind the small interface that the
contract wrapper (maniskill.py) drives, and the checks that must pass before building one: the task's
asset packs and a Vulkan device.

ManiSkill is imported inside functions, so importing this module costs only torch.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch

from reppo_fast.envs.contract_torch import blown_up_rows
from reppo_fast.envs.names import UnsupportedEnvError

# The observation layout the contract needs: one flat float vector per env.
OBS_MODE = "state"
# State observations need no camera, but SAPIEN still needs a Vulkan device to create render
# materials while loading a scene; "none" skips the render system (10-20% faster steps on CPU).
DEFAULT_RENDER_BACKEND = "none"
INSTALL_HINT = "ManiSkill3 is not installed: pip install -e '.[maniskill]'"
VULKAN_HINT = ("on a machine without a GPU, `source scripts/setup_lavapipe.sh` first (a CPU Vulkan "
               "device, lavapipe); on a GPU machine, install the NVIDIA driver's Vulkan ICD")


class MissingAssetsError(UnsupportedEnvError):
    """The task needs ManiSkill asset packs that are not on this machine (one-line message)."""


class NoVulkanError(UnsupportedEnvError):
    """SAPIEN found no Vulkan device; ManiSkill cannot load a scene without one."""


class Advance(NamedTuple):
    """One step of N envs, with the ended ones already reset; raw values, not yet sanitised."""

    next_obs: torch.Tensor    # [N, O] float32 observation after the action, before any reset
    reward: torch.Tensor      # [N] float32
    terminated: torch.Tensor  # [N] bool: ManiSkill's terminal flag, success | fail
    success: torch.Tensor     # [N] bool: info["success"] (all False if the task reports none)
    nonfinite: torch.Tensor   # [N] bool: next_obs or reward has a NaN/inf, or next_obs is beyond obs_limit
    obs: torch.Tensor         # [N, O] float32: the reset observation where the env ended, else next_obs


def import_maniskill() -> Any:
    """Import mani_skill with every task registered; a clear error if it is not installed."""
    try:
        import mani_skill.envs  # noqa: F401  (registers the tasks)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] in ("mani_skill", "sapien"):
            raise UnsupportedEnvError(INSTALL_HINT) from e
        raise
    from mani_skill.utils import registration

    return registration.REGISTERED_ENVS


def task_spec(name: str) -> Any:
    """ManiSkill's registration of task `name` (mani_skill.utils.registration.EnvSpec)."""
    registered = import_maniskill()
    if name not in registered:
        import mani_skill

        raise UnsupportedEnvError(f"{name} is not a task of the installed mani_skill "
                                  f"{mani_skill.__version__}")
    return registered[name]


def registered_max_episode_steps(name: str) -> int:
    """The time limit the task was registered with (PickCube-v1: 50)."""
    steps = task_spec(name).max_episode_steps
    if steps is None:
        raise UnsupportedEnvError(f"{name} has no registered time limit: pass episode_length")
    return int(steps)


def missing_assets(name: str, robot_uids: Any = None) -> list[str]:
    """Asset packs (ManiSkill data-source ids, e.g. "ycb") the task and its robots need and lack.

    Reads the same registries ManiSkill checks before it would prompt on stdin, so nothing here can
    block. robot_uids: as passed to the task (None: the task's default robot).
    """
    from mani_skill.agents.registration import REGISTERED_AGENTS
    from mani_skill.utils import assets

    spec = task_spec(name)
    if robot_uids is None:
        param = inspect.signature(spec.cls.__init__).parameters.get("robot_uids")
        robot_uids = param.default if param is not None else None
    robots = [robot_uids] if isinstance(robot_uids, str) else list(robot_uids or ())
    groups = list(spec.asset_download_ids or [])
    for robot in robots:
        if isinstance(robot, str) and robot in REGISTERED_AGENTS:
            groups += REGISTERED_AGENTS[robot].asset_download_ids or []
    missing: list[str] = []
    for group in groups:
        ids = (assets.expand_data_group_into_individual_data_source_ids(group)
               if group in assets.DATA_GROUPS and group not in assets.DATA_SOURCES else [group])
        missing += [i for i in ids if not assets.is_data_source_downloaded(i) and i not in missing]
    return missing


def missing_assets_message(name: str, packs: list[str]) -> str:
    import mani_skill

    cmds = " && ".join(f"python -m mani_skill.utils.download_asset {p} -y" for p in packs)
    return (f"{name} needs the ManiSkill asset pack {', '.join(packs)} (looked in {mani_skill.ASSET_DIR}; "
            f"set MS_ASSET_DIR to move it): run `{cmds}` on a machine with network access")


def require_assets(name: str, robot_uids: Any = None) -> None:
    """Raise MissingAssetsError (never a prompt, never a download) if an asset pack is missing."""
    packs = missing_assets(name, robot_uids)
    if packs:
        raise MissingAssetsError(missing_assets_message(name, packs))


def vulkan_error() -> str | None:
    """None if SAPIEN can create render resources (which loading any scene needs), else why not."""
    import sapien

    try:
        sapien.render.RenderMaterial()
    except RuntimeError as e:
        return f"SAPIEN found no Vulkan device ({e})"
    return None


@contextlib.contextmanager
def _no_asset_prompts(name: str) -> Iterator[None]:
    """Belt and braces for require_assets: ManiSkill asks on stdin (input()) before downloading an
    asset it misses (task or robot); answer with our error instead, so a run never blocks."""
    from mani_skill.utils import download_asset

    def refuse(message: str) -> bool:
        raise MissingAssetsError(f"{name}: {message.strip()} Refusing to prompt or download: run "
                                 f"`python -m mani_skill.utils.download_asset {name} -y` on a machine "
                                 "with network access")

    original = download_asset.prompt_yes_no
    download_asset.prompt_yes_no = refuse
    try:
        yield
    finally:
        download_asset.prompt_yes_no = original


class ManiSkillSim:
    """A ManiSkill task with num_envs parallel envs in this process: physx_cuda for many, or physx_cpu
    for exactly one (ManiSkill's CPU simulator holds one env per process; see maniskill_workers.py).

    No time limit and no wrappers: the task object itself, so ManiSkill never truncates or
    auto-resets; the contract wrapper owns both.
    """

    def __init__(self, name: str, *, num_envs: int, sim_backend: str, obs_limit: float = math.inf, **kw: Any):
        """obs_limit: an observation beyond +-obs_limit counts as blown-up physics (contract_torch's
        blown_up_rows); kw go to the ManiSkill task."""
        self.obs_limit = float(obs_limit)
        if kw.setdefault("obs_mode", OBS_MODE) != OBS_MODE:
            raise ValueError(f"obs_mode must be {OBS_MODE!r} (flat state observations), "
                             f"got {kw['obs_mode']!r}")
        kw.setdefault("render_backend", DEFAULT_RENDER_BACKEND)
        if num_envs == 1:
            # Unseeded resets then draw the new episode's torch seed from the env's own seeded RNG,
            # instead of the process's global torch RNG: every fresh worker process starts that at the
            # same default seed, so N workers would replay the same initial states. (Not for N > 1: it
            # seeds with env 0's episode seed, which partial resets of other envs leave unchanged.)
            kw.setdefault("enhanced_determinism", True)
        spec = task_spec(name)
        require_assets(name, kw.get("robot_uids"))
        try:
            with _no_asset_prompts(name):
                self.env = spec.make(num_envs=num_envs, sim_backend=sim_backend, **kw)
        except RuntimeError as e:
            if vulkan_error() is not None:
                raise NoVulkanError(f"{name}: SAPIEN found no Vulkan device ({e}): {VULKAN_HINT}") from e
            raise
        self.num_envs = num_envs
        self.device = torch.device(self.env.device)
        self.obs_size = int(np.prod(self.env.single_observation_space.shape))
        self.action_size = int(np.prod(self.env.single_action_space.shape))
        self.control_mode = str(self.env.control_mode)
        low = np.asarray(self.env.single_action_space.low, np.float32)
        high = np.asarray(self.env.single_action_space.high, np.float32)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise UnsupportedEnvError(f"{name}: control mode {self.control_mode} has an unbounded action "
                                      "space; pick a bounded one (control_mode=...)")
        # Affine map [-1, 1] -> [low, high]; identity (skipped) for ManiSkill's normalised controllers.
        self._scaled = not (np.allclose(low, -1.0) and np.allclose(high, 1.0))
        self._low = torch.as_tensor(low, device=self.device)
        self._half_range = torch.as_tensor((high - low) / 2.0, device=self.device)

    def _obs(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.reshape(self.num_envs, self.obs_size).to(torch.float32)

    def reset(self, seed: int) -> torch.Tensor:
        """All envs start a new episode (seeded); returns obs [N, O]."""
        obs, _ = self.env.reset(seed=seed)
        return self._obs(obs)

    def advance(self, action: torch.Tensor, time_up: torch.Tensor) -> Advance:
        """Step with action [N, A] in [-1, 1]; then reset (partially) every env that terminated, went
        non-finite or reached its time limit (time_up [N] bool), keeping the true next_obs apart."""
        action = action.to(self.device, torch.float32)
        if self._scaled:
            action = self._low + (action + 1.0) * self._half_range
        next_obs, reward, terminated, _, info = self.env.step(action)
        next_obs = self._obs(next_obs)
        reward = reward.reshape(self.num_envs).to(torch.float32)
        terminated = terminated.reshape(self.num_envs).to(torch.bool)
        success = info.get("success")
        if success is None:
            success = torch.zeros_like(terminated)
        success = success.reshape(self.num_envs).to(torch.bool)
        nonfinite = blown_up_rows(next_obs, self.obs_limit) | ~torch.isfinite(reward)
        ended = terminated | nonfinite | time_up.to(self.device)
        obs = next_obs
        # One host sync per step (ManiSkill's reset is driven from the host); with desynchronised
        # episodes some env ends on most steps anyway.
        env_idx = torch.nonzero(ended).reshape(-1)
        if env_idx.numel() > 0:
            reset_obs, _ = self.env.reset(options={"env_idx": env_idx})
            obs = torch.where(ended[:, None], self._obs(reset_obs), next_obs)
        return Advance(next_obs, reward, terminated, success, nonfinite, obs)

    def close(self) -> None:
        self.env.close()
