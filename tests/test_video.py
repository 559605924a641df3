"""Videos (reppo_fast.video, README Videos): a tiny run's policy rendered headless, by the command and during
training (`--video-interval`), on both frameworks; the one-line refusals; the GL choice.

Rendering runs in subprocesses: mujoco picks its GL backend when first imported, and in a test process an
earlier test has imported it already. The runs act every 20 physics steps (`--action-repeat 20`), so that
evaluation's full 1000-step DM Control episode is 50 agent steps, 50 frames.
"""

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reppo_fast import process_env
from reppo_fast.config import Config
from reppo_fast.tb_events import event_files, events
from reppo_fast.video import VideoError
from reppo_fast.video.restore import fewest_envs, fit_episodes
from reppo_fast.video.scenes import open_scene

pytestmark = pytest.mark.xdist_group("video")  # its module fixtures are built once, on one worker
needs_osmesa = pytest.mark.skipif(ctypes.util.find_library("OSMesa") is None,
                                  reason="headless MuJoCo rendering needs OSMesa: apt-get install libosmesa6")

REPO = Path(__file__).parents[1]
FRAMES = 50  # agent steps of an evaluation episode: 1000 physics steps / action repeat 20
ITERATION_STEPS = 16 * 8 * 20  # env steps (physics steps) of one iteration
TINY = dict(env="CartpoleBalance", num_envs=16, num_steps=8, num_epochs=2, num_minibatches=4, actor_hidden=32,
            critic_hidden=32, num_bins=51, v_max=100.0, num_eval_envs=2, episode_length=50, action_repeat=20,
            eval_interval=1, progress=False, seed=3)


def _flags(settings: dict) -> list[str]:
    out = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        out += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
    return out


def _python(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _video(*args: str) -> subprocess.CompletedProcess:
    return _python("-m", "reppo_fast.video", *args)


def _frames(path: Path) -> np.ndarray:
    import imageio.v2 as imageio

    with imageio.get_reader(path) as reader:
        return np.stack([frame[..., :3] for frame in reader])


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory) -> Path:
    """3 iterations on the JAX path, evaluated after each, filmed every 2nd evaluation (and the last)."""
    run_dir = tmp_path_factory.mktemp("video") / "jax"
    done = _python("-m", "reppo_fast.train", *_flags(TINY), "--total-steps", str(3 * ITERATION_STEPS),
                   "--video-interval", "2", "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory) -> Path:
    """1 iteration on the torch path, trained here: no video asked for, so nothing renders."""
    from reppo_fast.runner import run

    run_dir = tmp_path_factory.mktemp("video") / "torch"
    return run(Config().replace(**TINY, framework="torch", total_steps=ITERATION_STEPS, run_dir=str(run_dir)))


@needs_osmesa
def test_video_interval_films_every_nth_evaluation_and_the_last(jax_run):
    videos = sorted(p.name for p in (jax_run / "videos").iterdir())
    assert videos == ["iter_00000002.mp4", "iter_00000003.mp4"]  # evaluations 1, 2, 3: the 2nd and the last
    frames = _frames(jax_run / "videos" / "iter_00000003.mp4")
    assert frames.shape == (FRAMES, 240, 320, 3)
    # TensorBoard: a GIF preview per video at its env steps, in a run of its own.
    images = [(e.step, v.image) for path in event_files(jax_run / "tb" / "videos") for e in events(path)
              for v in e.summary.value if v.tag == "eval/video"]
    assert [step for step, _ in images] == [2 * ITERATION_STEPS, 3 * ITERATION_STEPS]
    for _, image in images:
        assert image.encoded_image_string[:4] == b"GIF8" and (image.height, image.width) == (120, 160)


@needs_osmesa
def test_command_renders_the_trained_policy(jax_run, tmp_path):
    out = tmp_path / "again.mp4"
    done = _video(str(jax_run), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "50 frames of 320x240" in done.stdout and "iteration 3" in done.stdout
    frames = _frames(out)
    assert frames.shape == (FRAMES, 240, 320, 3)
    assert frames.std() > 0 and frames.mean() > 10  # not blank
    assert all(np.any(frames[t] != frames[t + 1]) for t in range(FRAMES - 1))  # the cart moves
    # The newest checkpoint's policy from the same start: the frames the run filmed after its last iteration.
    np.testing.assert_array_equal(frames, _frames(jax_run / "videos" / "iter_00000003.mp4"))


@needs_osmesa
def test_torch_runs_checkpoint_renders_to_a_gif(torch_run):
    done = _video(str(torch_run), "--gif", "--height", "48", "--width", "64", "--max-frames", "10",
                  "--camera", "lookatcart")
    assert done.returncode == 0, done.stderr[-3000:]
    gif = torch_run / "videos" / "iter_00000001.gif"
    assert f"wrote {gif}: 10 frames of 64x48" in done.stdout
    frames = _frames(gif)
    assert frames.shape == (10, 48, 64, 3) and frames.std() > 0


def test_command_errors_are_one_line(tmp_path, monkeypatch, capsys):
    """Refused before anything is built: each says why in one line, with exit status 2."""
    from reppo_fast.video.command import main

    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # the command's GL choice, undone after the test
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    bare, trained = tmp_path / "bare", tmp_path / "trained"
    for run_dir in (bare, trained):
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "config.json").write_text(Config().replace(**TINY).to_json())
    (trained / "checkpoints" / "ckpt_00000003.npz").write_bytes(b"")
    cases = [([str(tmp_path / "nowhere")], "no such directory"),
             ([str(tmp_path)], "no config.json there"),
             ([str(bare)], "no checkpoint in"),
             ([str(trained), "--iteration", "7"], "checkpointed iterations: 3"),
             ([str(trained), "--out", str(tmp_path / "v.avi")], "written as .mp4 or .gif"),
             ([str(trained), "--max-frames", "0"], "--max-frames must be an integer from 1")]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, (args, err)


def test_toy_env_is_refused():
    with pytest.raises(VideoError, match="ToyPointMass cannot be rendered"):
        open_scene(Config().replace(env="ToyPointMass"))


def test_player_needs_few_envs():
    """The rebuilt run steps the fewest envs whose rollout every minibatch count divides."""
    assert fewest_envs(Config()) == 1  # 64 minibatches of 1024 x 128 steps
    assert fewest_envs(Config().replace(num_steps=16, num_minibatches=64)) == 4
    rpo = Config().replace(algo="rpo", num_steps=32, num_minibatches=4, rpo_minibatches=128)
    assert fewest_envs(rpo) == 4


def test_fit_episodes_takes_only_env_sized_entries():
    saved = {"net.w": np.ones((8, 4)), "env.obs": np.ones((1024, 5)), "env.key": np.ones((8, 2)),
             "ep_return": np.ones(1024), "bad.w": np.ones((16, 4))}
    fresh = {"net.w": np.zeros((8, 4)), "env.obs": np.zeros((1, 5)), "env.key": np.zeros(2),
             "ep_return": np.zeros(1), "bad.w": np.zeros((16, 8))}
    fitted = fit_episodes(saved, fresh)
    assert fitted["net.w"] is saved["net.w"] and fitted["bad.w"] is saved["bad.w"]  # from_arrays refuses it
    assert all(fitted[k] is fresh[k] for k in ("env.obs", "env.key", "ep_return"))


@pytest.mark.parametrize("cuda, backend", [(False, "osmesa"), (True, "egl")])
def test_gl_backend_follows_the_gpu(monkeypatch, cuda, backend):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(process_env, "_torch_cuda", lambda: cuda)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so")
    assert process_env.configure_gl() == backend
    assert os.environ["MUJOCO_GL"] == os.environ["PYOPENGL_PLATFORM"] == backend


def test_gl_backend_left_alone(monkeypatch):
    """The user's choice is kept; without the library nothing is set, so training imports mujoco as ever."""
    monkeypatch.setattr(process_env, "_torch_cuda", lambda: False)
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setenv("PYOPENGL_PLATFORM", "egl")
    assert process_env.configure_gl() == "egl" and os.environ["MUJOCO_GL"] == "egl"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert process_env.configure_gl() is None
    assert "MUJOCO_GL" not in os.environ and "PYOPENGL_PLATFORM" not in os.environ
