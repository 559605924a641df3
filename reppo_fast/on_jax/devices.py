"""Which devices a JAX run trains on: every local device of JAX's default backend (`--devices N`: the first
N of each host's), and, for a run over several hosts (`--multi-host`), joining them first through
`jax.distributed.initialize`.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh

from reppo_fast.config import ConfigError
from reppo_fast.on_jax.data_parallel import DATA_AXIS


def initialize_multi_host() -> None:
    """Join the other hosts' processes, before JAX touches a device. SLURM and Open MPI launches are
    detected by JAX; elsewhere JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and
    JAX_PROCESS_ID say where each process stands."""
    kwargs = {name: int(os.environ[var]) for name, var in (("num_processes", "JAX_NUM_PROCESSES"),
                                                           ("process_id", "JAX_PROCESS_ID"))
              if var in os.environ}
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"multi_host: jax.distributed.initialize failed ({first}); launch one process per "
                          "host under SLURM (srun) or Open MPI, or set JAX_COORDINATOR_ADDRESS, "
                          "JAX_NUM_PROCESSES and JAX_PROCESS_ID (README, Many GPUs)") from None


def training_mesh(devices: int | None) -> Mesh:
    """The 1-D mesh over the first `devices` local devices of every host (None: all of them), ordered by
    host then device id, so the mesh index of a device is its global rank."""
    by_process: dict[int, list] = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    local = len(by_process[jax.process_index()])
    if devices is not None and devices > local:
        raise ConfigError(f"devices={devices}, but this host has {local} {jax.default_backend()} device(s); "
                          f"pass --devices {local} or fewer")
    chosen = [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:devices]]
    return Mesh(np.array(chosen), (DATA_AXIS,))
