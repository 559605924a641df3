"""What differentiating through an env's `step` needs (RPO, docs/algorithms.md section 11).

contract_jax.VecEnv.step is differentiable as it stands: actions flow into the physics, gradients through
the next state, the reward and the true next observation within an episode, and an auto-reset swaps in a
stop_gradient first state, so no gradient crosses an episode boundary. Two things remain per task:

- MJX's constraint solver runs `opt.iterations` Newton/CG iterations in a lax.while_loop when that is more
  than 1, and reverse-mode AD cannot differentiate a while_loop. Tasks that ship 1 (BallInCup, Cartpole*,
  PointMass, Reacher*) work as shipped; the others are refused unless the run opts in to
  opt.iterations = 1, a change of the physics that is printed at start.
- float32 physics gives non-finite gradients in some Cartpole envs (the f32 solver's inactive slider-limit
  row); float64 physics (jax_enable_x64, set before the model is built) removes them.
"""

from __future__ import annotations

from typing import Any

from reppo_fast.envs.names import UnsupportedEnvError


def physics_env(raw: Any) -> Any:
    """The playground env under any wrappers (ActionRepeat keeps it as `.raw`), or None (e.g. the toy)."""
    while raw is not None and not hasattr(raw, "mj_model"):
        raw = getattr(raw, "raw", None)
    return raw


def solver_iterations(raw: Any) -> int | None:
    """The MJX solver's iterations of a raw env, or None for an env without MJX physics."""
    physics = physics_env(raw)
    return None if physics is None else int(physics.mj_model.opt.iterations)


def make_differentiable(raw: Any, name: str, *, single_solver_iteration: bool) -> str | None:
    """Check (and, opted in, change) a raw env so reverse-mode AD can run through its `step`.

    Returns a one-line note of the physics change made, or None when the env is used as shipped. Raises
    UnsupportedEnvError naming the opt-in for a solver with more than one iteration."""
    iterations = solver_iterations(raw)
    if iterations is None or iterations <= 1:
        return None
    if not single_solver_iteration:
        raise UnsupportedEnvError(
            f"{name}: its MJX solver runs opt.iterations={iterations} in a lax.while_loop, which "
            f"reverse-mode AD cannot differentiate; RPO needs --rpo-single-solver-iteration (changes the "
            f"physics to opt.iterations=1) or a task that ships 1 (Cartpole*, BallInCup, PointMass, "
            f"Reacher*)")
    from mujoco import mjx

    physics = physics_env(raw)
    physics.mj_model.opt.iterations = 1
    # playground's envs read the device model from _mjx_model (mjx_env.MjxEnv.mjx_model returns it).
    physics._mjx_model = mjx.put_model(physics.mj_model, impl=physics.mjx_model.impl.value)
    return (f"{name}: physics changed for RPO: MJX solver opt.iterations {iterations} -> 1 "
            "(--rpo-single-solver-iteration)")
