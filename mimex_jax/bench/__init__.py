"""Benchmarks shipped with the package (``mimex-jax bench <name>``).

- :mod:`mimex_jax.bench.exploration`: does an exploration bonus find sparse rewards that
  PPO alone misses? Tasks x methods x seeds, IQM with bootstrap CIs, ablations.
- :mod:`mimex_jax.bench.stats`: the interquartile mean and its bootstrap interval.
"""
