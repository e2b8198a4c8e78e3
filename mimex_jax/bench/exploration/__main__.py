"""``python -m mimex_jax.bench.exploration`` == ``mimex-jax bench exploration``."""

from mimex_jax.bench.exploration.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
