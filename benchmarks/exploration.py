"""Exploration benchmark; the code lives in :mod:`mimex_jax.bench.exploration`.

    python benchmarks/exploration.py [--quick] [...]   # == mimex-jax bench exploration
"""

from mimex_jax.bench.exploration import main

if __name__ == "__main__":
    raise SystemExit(main())
