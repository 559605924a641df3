"""The actor and PPO critic depth fields renamed in issue 13: the old flags fail with a one-line error naming
the new ones, and run configs saved under the old names still read with the same meaning (hidden blocks)."""

import json

import pytest

from reppo_fast.config import Config, ConfigError
from reppo_fast.train import main, parse_args


@pytest.mark.parametrize("args, new", [(["--actor-layers", "3"], "--actor-hidden-blocks"),
                                       (["--critic-layers=4"], "--critic-hidden-blocks")])
def test_old_flags_name_the_new_ones(args, new, capsys):
    argv = ["--env", "CartpoleBalance", *args]
    with pytest.raises(ConfigError, match=new):
        parse_args(argv)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and new in err[0]


def test_old_run_configs_read_with_the_same_meaning():
    saved = {"actor_layers": 3, "ppo": {"critic_layers": 4}, "env": "CartpoleBalance"}
    cfg = Config.from_json(json.dumps(saved))
    assert (cfg.actor_hidden_blocks, cfg.critic_hidden_blocks) == (3, 4)
    flat = Config.from_json(json.dumps({"actor_layers": 1, "critic_layers": 2}))
    assert (flat.actor_hidden_blocks, flat.critic_hidden_blocks) == (1, 2)


def test_replace_with_an_old_name_says_the_new_one():
    with pytest.raises(ConfigError, match="'actor_layers' is now 'actor_hidden_blocks'"):
        Config().replace(actor_layers=2)
