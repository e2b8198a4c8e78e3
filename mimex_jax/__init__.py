"""mimex-jax: MIMEx intrinsic rewards (masked input modeling) as pure JAX functions."""

__version__ = "0.1.0"
