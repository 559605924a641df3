"""The report and the target verdicts on synthetic results (no timing): CI keeps them from rotting."""

import json

from bench import report, targets
from bench.op_data import CASES
from bench.results import load
from bench.shapes import SHAPES

# Seconds per call: every fused path 40x faster than eager and 4x faster than the compiled reference.
OP_SECONDS = {"torch-eager": 4e-3, "torch-compile": 4e-4, "torch-compile+graph": 5e-4, "triton": 1e-4,
              "triton+graph": 1.2e-4, "jax-xla": 3e-4, "pallas": 2e-4}
E2E_SECONDS = {"torch-eager": 5.0, "torch-compile+graph": 2.5, "torch-compile+graph+triton": 2.0,
               "jax-xla": 1.0, "jax-pallas": 1.1}
MACHINE = {"device": "NVIDIA H100 80GB HBM3", "versions": {"torch": "2.13.0"}, "commit": "abc",
           "load_avg": 0.1}


def _bench(median, info):
    return {"stats": {"median": median}, "extra_info": info}


def _results(tmp_path, device_kind):
    benches = [_bench(seconds, {"kind": "op", "op": op, "mode": mode, "shape": shape, "variant": variant,
                                "framework": "jax" if variant in ("jax-xla", "pallas") else "torch",
                                "interpreted": False, "peak_bytes": 2**20 * (3 if variant == "pallas" else 2),
                                "gbps": 1e9 / seconds / 1e9, "copy_gbps": 3000.0, "copy_method": "copy_",
                                "copy_fraction": 1.0 / seconds / 3000.0, "device_kind": device_kind,
                                **MACHINE})
               for op, mode in CASES for shape in SHAPES for variant, seconds in OP_SECONDS.items()]
    config = {"preset": "dmc", "num_envs": 1024, "num_steps": 128, "num_epochs": 8, "num_minibatches": 64,
              "actor_hidden": 512, "critic_hidden": 512}
    benches += [_bench(seconds, {"kind": "e2e", "env": env, "variant": variant, "measure": measure,
                                 "framework": variant.split("-")[0], "steps_per_iteration": 131072,
                                 "updates_per_call": 512, "config": config, "peak_bytes": 2**30,
                                 "device_kind": device_kind, **MACHINE})
                for env in ("HumanoidRun", "CartpoleBalance") for variant, seconds in E2E_SECONDS.items()
                for measure in ("iteration", "update")]
    path = tmp_path / f"{device_kind}.json"
    path.write_text(json.dumps({"datetime": "2026-01-01", "benchmarks": benches}))
    return load(path)


def test_gpu_report_judges_every_target(tmp_path):
    results = _results(tmp_path, "cuda")
    verdicts = {v.target: v for v in targets.evaluate(results)}
    assert verdicts["fused tanh_normal + KL fwd+bwd >= 20x eager (dmc)"].met
    assert verdicts["HL-Gauss CE fwd+bwd >= 1.5x compiled reference (dmc)"].met
    missed = verdicts["lambda-returns >= 100x the eager Python loop (dmc, Triton)"]
    assert missed.met is False and missed.measured == "40.00x" and "60% short" in missed.note
    update = verdicts["torch update step >= 3x eager reference (HumanoidRun)"]
    assert update.met is False and "reference ops reach 2.00x" in update.note
    assert verdicts["JAX + Pallas iteration no slower than the JAX reference (HumanoidRun)"].met is False
    assert verdicts["fused ops never use more peak memory than their references"].met is False
    text = report.render(results)
    assert "10 of 17 measured targets met" in text
    assert "| dmc | triton | 0.1 | 10000.0 | 333% | 40.00 |" in text
    assert "| HumanoidRun | torch-compile+graph+triton |" in text


def test_cpu_report_leaves_the_targets_alone(tmp_path):
    text = report.render(_results(tmp_path, "cpu"))
    assert "**CPU run.**" in text and "are not evaluated" in text and "**missed**" not in text
