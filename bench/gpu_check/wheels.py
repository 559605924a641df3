"""Is the carried wheel set complete? `python -m bench.gpu_check.wheels .whl` reads each wheel's
Requires-Dist, evaluates its markers for CPython 3.12 on Linux (the GPU machine), and names every
requirement that is neither carried nor on the GPU image, unless it is known to be unused on our paths.
Exit status 1 when one is left: carry it too, or say here why it is not needed."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

# The GPU image's packages that these wheels ask for (device docs: KINDS.md, nvidia-h200, 2026-11-17).
ON_IMAGE = {"absl-py", "etils", "flax", "jax", "jaxlib", "jinja2", "lxml", "numpy", "optax",
            "orbax-checkpoint", "packaging", "pillow", "protobuf", "pyyaml", "scipy", "tqdm",
            "typing-extensions"}
# Asked for, never imported by `import mujoco_playground` + HumanoidRun with impl="jax" + our torch bridge
# (checked by importing them with these modules blocked).
UNUSED = {"flask": "brax's HTML viewer", "flask-cors": "brax's HTML viewer",
          "mujoco-studio": "mujoco's interactive viewer", "glfw": "mujoco's windowed rendering",
          "pyopengl": "mujoco's OpenGL rendering", "mediapy": "playground's video helpers",
          "warp-lang": "impl='warp' only; we run impl='jax' (149 MB)"}
TARGET = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3",
          "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({**TARGET, "extra": ""})]


def missing(folder: Path) -> list[str]:
    wheels = sorted(folder.glob("*.whl"))
    carried = {normalise(w.name.split("-")[0]) for w in wheels}
    problems = []
    for wheel in wheels:
        for req in requirements(wheel):
            name = normalise(req.name)
            if name not in carried and name not in ON_IMAGE and name not in UNUSED:
                problems.append(f"{wheel.name} needs {req}: carry it, or add it to UNUSED with the reason")
    return problems


def main(folder: str) -> int:
    wheels = sorted(Path(folder).glob("*.whl"))
    if not wheels:
        print(f"no wheels in {folder}: run bash scripts/gpu_wheels.sh", file=sys.stderr)
        return 1
    problems = missing(Path(folder))
    for line in problems:
        print(line)
    if not problems:
        print(f"{len(wheels)} wheels: every requirement is carried, on the GPU image, or unused "
              f"({', '.join(sorted(UNUSED))})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".whl"))
