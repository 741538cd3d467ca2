"""The names of a checkpoint's parts, the same in both backends' formats."""

# The checkpoint's object keys. Renaming one makes every existing checkpoint unreadable.
GENERATOR = "generator"
GENERATOR_EMA = "generator_ema"
CRITIC = "critic"
GENERATOR_OPTIMIZER = "generator_optimizer"
CRITIC_OPTIMIZER = "critic_optimizer"
STEP = "step"
ELAPSED = "elapsed"
BEST_FD = "best_fd"
AUGMENT = "augment"
