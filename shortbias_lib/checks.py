"""Checks of an experiment's configuration that several experiments share: one rule, one message."""


def check_horizons(horizons):
    """Horizons are increasing positive integers."""
    if not horizons or any(int(h) != h or h < 1 for h in horizons) or list(horizons) != sorted(set(horizons)):
        raise ValueError(f"horizons must be increasing positive integers; got {horizons}")


def check_counts(config, keys, minimum=1):
    """Each of ``config[key]`` is an integer >= ``minimum`` (1: a positive integer)."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    for key in keys:
        if int(config[key]) != config[key] or config[key] < minimum:
            raise ValueError(f"{key} must be {what}; got {config[key]!r}")


def check_eval_chunk(config):
    """The meta-objective's examples are evaluated in whole chunks."""
    if config["objective_examples"] % config["eval_chunk"]:
        raise ValueError(f"eval_chunk must divide objective_examples ({config['objective_examples']}); "
                         f"got {config['eval_chunk']}")


def check_dtype(config, key):
    """A floating-point precision the experiments run in, by name."""
    if config[key] not in ("float32", "float64"):
        raise ValueError(f"{key} must be 'float32' or 'float64'; got {config[key]!r}")
