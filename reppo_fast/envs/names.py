"""Environment names: canonical names per suite, short aliases, and `resolve_env`.

Deliberately free of heavy imports (no jax, torch or mujoco_playground) so the CLI can validate a name
and print `--help` instantly.

Suites:
  dmc        the mujoco_playground DM Control suite: the paper's 23 tasks plus PointMass and
             SwimmerSwimmer6 (JAX path).
  toy        ToyPointMass, a tiny analytic env for tests and smoke runs (envs/toy_jax.py).
  maniskill  ManiSkill3 task ids (PyTorch path, reppo_fast.envs.maniskill).

Aliases (case-insensitive):
  Humanoid -> HumanoidRun        Walker   -> WalkerWalk       Cheetah  -> CheetahRun
  Cartpole -> CartpoleBalance    Hopper   -> HopperHop        Pendulum -> PendulumSwingup
  Acrobot  -> AcrobotSwingup     Finger   -> FingerSpin       Reacher  -> ReacherEasy
  Fish     -> FishSwim           Swimmer  -> SwimmerSwimmer6  Toy      -> ToyPointMass
  and every ManiSkill id without its version suffix, e.g. PickCube -> PickCube-v1.
An alias names the task people usually mean by the bare family name (Humanoid -> HumanoidRun, the
paper's headline task), not necessarily the hardest one.
"""

from __future__ import annotations

import difflib
from typing import NamedTuple

# The 23 DM Control tasks of the paper, in the paper's order.
DMC_TASKS: tuple[str, ...] = (
    "AcrobotSwingup", "AcrobotSwingupSparse", "BallInCup", "CartpoleBalance", "CartpoleBalanceSparse",
    "CartpoleSwingup", "CartpoleSwingupSparse", "CheetahRun", "FingerSpin", "FingerTurnEasy",
    "FingerTurnHard", "FishSwim", "HopperHop", "HopperStand", "PendulumSwingup", "ReacherEasy",
    "ReacherHard", "WalkerRun", "WalkerWalk", "WalkerStand", "HumanoidStand", "HumanoidWalk",
    "HumanoidRun",
)
# Also in playground's DM Control suite, not in the paper.
DMC_EXTRA: tuple[str, ...] = ("PointMass", "SwimmerSwimmer6")
TOY_TASKS: tuple[str, ...] = ("ToyPointMass",)
MANISKILL_TASKS: tuple[str, ...] = (
    "PickSingleYCB-v1", "PegInsertionSide-v1", "PokeCube-v1", "PullCube-v1", "RollBall-v1",
    "LiftPegUpright-v1", "UnitreeG1PlaceAppleInBowl-v1", "UnitreeG1TransportBox-v1", "PickCube-v1",
    "PushCube-v1",
)

SUITES: dict[str, tuple[str, ...]] = {
    "dmc": DMC_TASKS + DMC_EXTRA,
    "toy": TOY_TASKS,
    "maniskill": MANISKILL_TASKS,
}

ALIASES: dict[str, str] = {
    "Humanoid": "HumanoidRun", "Walker": "WalkerWalk", "Cheetah": "CheetahRun",
    "Cartpole": "CartpoleBalance", "Hopper": "HopperHop", "Pendulum": "PendulumSwingup",
    "Acrobot": "AcrobotSwingup", "Finger": "FingerSpin", "Reacher": "ReacherEasy", "Fish": "FishSwim",
    "Swimmer": "SwimmerSwimmer6", "Toy": "ToyPointMass",
    **{task.rsplit("-v", 1)[0]: task for task in MANISKILL_TASKS},
}

# mujoco_playground's locomotion and manipulation suites (playground 0.2.0; a test checks this list
# against playground's registry). Kept static so this module never imports playground.
PLAYGROUND_ONLINE_ONLY: tuple[str, ...] = (
    "ApolloJoystickFlatTerrain", "BarkourJoystick", "BerkeleyHumanoidJoystickFlatTerrain",
    "BerkeleyHumanoidJoystickRoughTerrain", "G1JoystickFlatTerrain", "G1JoystickRoughTerrain",
    "Go1JoystickFlatTerrain", "Go1JoystickRoughTerrain", "Go1Getup", "Go1Handstand", "Go1Footstand",
    "H1InplaceGaitTracking", "H1JoystickGaitTracking", "Op3Joystick", "SpotFlatTerrainJoystick",
    "SpotGetup", "SpotJoystickGaitTracking", "T1JoystickFlatTerrain", "T1JoystickRoughTerrain",
    "AlohaHandOver", "AlohaSinglePegInsertion", "PandaPickCube", "PandaPickCubeOrientation",
    "PandaPickCubeCartesian", "PandaOpenCabinet", "PandaRobotiqPushCube", "LeapCubeReorient",
    "LeapCubeRotateZAxis", "AeroCubeRotateZAxis",
)


class UnknownEnvError(ValueError):
    """A name that no suite we support knows; the message is one line."""


class UnsupportedEnvError(ValueError):
    """A known env that this build cannot run (e.g. ManiSkill3 before the PyTorch path exists)."""


class EnvName(NamedTuple):
    name: str          # canonical name, e.g. "HumanoidRun"
    suite: str         # "dmc" | "toy" | "maniskill"
    alias: str | None  # the string the user gave when it differs from `name`, else None


def _key(name: str) -> str:
    # Case- and separator-insensitive, so dm_control spellings ("walker_walk") resolve too.
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


_SUITE_OF: dict[str, str] = {task: suite for suite, tasks in SUITES.items() for task in tasks}
_BY_KEY: dict[str, str] = {_key(task): task for task in _SUITE_OF}
_ALIAS_BY_KEY: dict[str, str] = {_key(alias): task for alias, task in ALIASES.items()}
_ONLINE_BY_KEY: dict[str, str] = {_key(task): task for task in PLAYGROUND_ONLINE_ONLY}


def resolve_env(name: str) -> EnvName:
    """Resolve a user-given env name: exact match, then case/separator-insensitive, then an alias.

    Raises UnknownEnvError (one line) for unknown names and for playground's online-only suites.
    """
    if name in _SUITE_OF:
        return EnvName(name, _SUITE_OF[name], None)
    canonical = _BY_KEY.get(_key(name)) or _ALIAS_BY_KEY.get(_key(name))
    if canonical is not None:
        return EnvName(canonical, _SUITE_OF[canonical], name)
    if _key(name) in _ONLINE_BY_KEY:
        raise UnknownEnvError(
            f"env '{_ONLINE_BY_KEY[_key(name)]}' is in mujoco_playground's locomotion/manipulation suites, "
            "which clone a repository of robot assets at load time (network access), so only the "
            "DM Control suite works offline"
        )
    candidates = {task.lower(): task for task in _SUITE_OF} | {a.lower(): a for a in ALIASES}
    close = difflib.get_close_matches(name.lower(), list(candidates), n=3, cutoff=0.6)
    hint = f"; closest: {', '.join(candidates[c] for c in close)}" if close else ""
    raise UnknownEnvError(f"unknown env {name!r}{hint} (see --help for all names)")


def describe_names() -> str:
    """Every accepted name, one suite per line, for `--help`."""
    lines = [f"{suite}: {', '.join(tasks)}" for suite, tasks in SUITES.items()]
    lines.append("aliases: " + ", ".join(f"{a}->{t}" for a, t in ALIASES.items()))
    return "\n".join(lines)
