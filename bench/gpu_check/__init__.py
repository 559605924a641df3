"""One command that checks and measures the GPU path on a lent GPU machine: `bash scripts/gpu_check.sh`
(docs/gpu_check.md). The logic is `python -m bench.gpu_check`; the wrapper only installs the carried wheels.

Phases, each a subprocess in a time box carved from one budget (a phase that runs past its box is cut and
reported as cut, with what it finished): facts (versions, device, driver, commit), tests (the GPU test
subset), e2e (bench/test_e2e.py per variant on HumanoidRun), ops (bench/test_ops.py at the paper's shape).
pytest phases stream one JSON line per test and per benchmark as they finish (stream.py), and the markdown
report is rewritten after every phase, so a run cut by an outer timeout still leaves its report.
`--dry-run` runs the same plumbing on a CPU in about two minutes: tiny shapes, Triton's interpreter,
ToyPointMass instead of HumanoidRun.

Modules: environ (process variables), plan (what runs, with which share of the budget), budget (time
arithmetic), boxed (one time-boxed command), stream (the pytest plugin), facts (machine facts), streams
(reading the JSON lines), report (the markdown), publish (where the report and files go), wheels (the
carried wheels' requirements), check (the driver).
"""
