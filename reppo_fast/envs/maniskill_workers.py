"""N ManiSkill CPU envs, one subprocess each, behind ManiSkillSim's interface (reset/advance/close).

ManiSkill's CPU simulator (physx_cpu) holds one env per process, so N envs need N processes. Workers
start with `spawn` (or `forkserver`): fork would copy a parent that may already hold SAPIEN/Vulkan or
CUDA state, and hangs. Each step is one round trip per worker over a Pipe (a few hundred bytes each
way), sent to all workers before any reply is read, so the N simulators step in parallel.

Shutdown: close() asks every worker to exit and joins it (terminating stragglers); a
weakref.finalize runs the same at garbage collection and at interpreter exit; and if the parent dies
without either (SIGKILL), each worker's next recv() sees EOF on its pipe and the worker exits.
Workers ignore SIGINT, so Ctrl-C reaches only the parent, which then shuts them down.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
import weakref
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from reppo_fast import process_env
from reppo_fast.envs.maniskill_sim import Advance

JOIN_TIMEOUT_S = 10.0


def _error(e: BaseException) -> tuple[BaseException | None, str]:
    """(the exception if it is one of ours, so the parent re-raises it as is; the traceback)."""
    ours = type(e).__module__.startswith("reppo_fast.")
    return (e if ours else None), traceback.format_exc()


def _worker(conn: Connection, name: str, seed_offset: int, kw: dict[str, Any]) -> None:
    """Child process: build one physx_cpu env, then serve commands until "close" or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)  # N workers share the machine's cores
    process_env.quiet_known_warnings()
    try:
        from reppo_fast.envs.maniskill_sim import ManiSkillSim

        sim = ManiSkillSim(name, num_envs=1, sim_backend="physx_cpu", **kw)
        conn.send(("ok", (sim.obs_size, sim.action_size, sim.control_mode)))
    except BaseException as e:  # noqa: BLE001  (the parent re-raises it with the traceback)
        conn.send(("error", _error(e)))
        return
    try:
        while True:
            try:
                cmd, arg = conn.recv()
            except (EOFError, OSError):
                break  # the parent is gone
            if cmd == "close":
                break
            try:
                if cmd == "reset":
                    out: Any = sim.reset(arg + seed_offset).numpy()
                else:
                    action, time_up = arg
                    step = sim.advance(torch.from_numpy(action), torch.from_numpy(time_up))
                    out = tuple(x.numpy() for x in step)
                conn.send(("ok", out))
            except BaseException as e:  # noqa: BLE001
                conn.send(("error", _error(e)))
    finally:
        sim.close()
        conn.close()


def _shutdown(conns: list[Connection], procs: list[mp.process.BaseProcess]) -> None:
    """Ask each worker to exit, wait, then terminate any that did not. Idempotent."""
    for conn in conns:
        try:
            conn.send(("close", None))
        except (OSError, ValueError):
            pass
    for proc in procs:
        proc.join(JOIN_TIMEOUT_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(JOIN_TIMEOUT_S)
    for conn in conns:
        conn.close()


class WorkerError(RuntimeError):
    """A worker raised; the message carries the worker's traceback."""


class SubprocessManiSkill:
    """num_envs ManiSkill envs on physx_cpu, one per worker; tensors in and out live on the CPU.

    Worker i seeds its env with seed + i, so worker 0 reproduces an in-process single env.
    """

    def __init__(self, name: str, *, num_envs: int, start_method: str = "spawn", **kw: Any):
        if start_method == "fork":
            raise ValueError("start_method='fork' hangs ManiSkill workers; use 'spawn' or 'forkserver'")
        ctx = mp.get_context(start_method)
        self.num_envs = num_envs
        self.device = torch.device("cpu")
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._conns, self._procs)
        for i in range(num_envs):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child_end, name, i, kw), daemon=True,
                               name=f"maniskill-{name}-{i}")
            proc.start()
            child_end.close()  # only the child holds it now, so the child's death is EOF here
            self._conns.append(parent_end)
            self._procs.append(proc)
        try:
            specs = self._gather()
        except BaseException:
            self.close()
            raise
        self.obs_size, self.action_size, self.control_mode = specs[0]

    @property
    def pids(self) -> list[int | None]:
        return [proc.pid for proc in self._procs]

    def _gather(self) -> list[Any]:
        """One reply from every worker, in order; re-raises the first worker error after reading all."""
        replies, error = [], None
        for i, conn in enumerate(self._conns):
            try:
                status, payload = conn.recv()
            except (EOFError, OSError):
                status, payload = "error", (None, f"worker {i} died (exit code {self._procs[i].exitcode})")
            if status == "error" and error is None:
                error = (i, payload)
            replies.append(payload)
        if error is not None:
            i, (exc, tb) = error
            if exc is not None:  # ours (missing assets, no Vulkan): keep its type and one-line message
                raise exc
            raise WorkerError(f"ManiSkill worker {i} failed:\n{tb}")
        return replies

    def reset(self, seed: int) -> torch.Tensor:
        for conn in self._conns:
            conn.send(("reset", seed))
        return torch.from_numpy(np.concatenate(self._gather(), axis=0))

    def advance(self, action: torch.Tensor, time_up: torch.Tensor) -> Advance:
        action = action.detach().to("cpu", torch.float32).numpy()
        time_up = time_up.detach().to("cpu", torch.bool).numpy()
        for i, conn in enumerate(self._conns):
            conn.send(("advance", (action[i:i + 1], time_up[i:i + 1])))
        fields = zip(*self._gather())
        return Advance(*(torch.from_numpy(np.concatenate(f, axis=0)) for f in fields))

    def close(self) -> None:
        self._finalizer()
