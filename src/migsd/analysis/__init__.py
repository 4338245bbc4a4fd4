"""Analysis over many runs: sensitivity problems, the sweep store and its evaluators, scenario discovery."""
