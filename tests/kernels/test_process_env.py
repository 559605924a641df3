"""The one rule for Triton's interpreter and JAX's preallocation (reppo_fast.process_env), with and without
CUDA; torch's answer is replaced, the environment is restored after each test."""

import os

import pytest

from reppo_fast import process_env

_VARS = ("TRITON_INTERPRET", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION")


@pytest.fixture
def env(monkeypatch):
    """A clean slate of the variables configure touches; `env(cuda=...)` sets what torch reports.
    setenv first, so that monkeypatch records each variable, and restores it even where configure sets it
    (a TRITON_INTERPRET left behind would switch later tests' kernels to the interpreter)."""
    for name in _VARS:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)

    def with_cuda(cuda: bool):
        monkeypatch.setattr(process_env, "_torch_cuda", lambda: cuda)
        return monkeypatch

    return with_cuda


def test_without_cuda_the_interpreter_and_the_cpu(env):
    env(cuda=False)
    process_env.configure(triton_interpreter_without_cuda=True)
    assert os.environ["TRITON_INTERPRET"] == "1" and os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert process_env.triton_device() == "cpu"


def test_with_cuda_the_compiled_path(env):
    env(cuda=True)
    process_env.configure(triton_interpreter_without_cuda=True)
    assert "TRITON_INTERPRET" not in os.environ and process_env.triton_device() == "cuda"


def test_not_asked_leaves_triton_alone(env):
    env(cuda=False)
    process_env.configure(triton_interpreter_without_cuda=False)
    assert "TRITON_INTERPRET" not in os.environ and os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_the_users_settings_win(env):
    monkeypatch = env(cuda=True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the interpreter on a GPU machine, asked for
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.3")
    process_env.configure(triton_interpreter_without_cuda=True)
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ
    assert process_env.triton_device() == "cpu"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    env(cuda=False)
    process_env.configure(triton_interpreter_without_cuda=True)
    assert os.environ["TRITON_INTERPRET"] == "0" and os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
