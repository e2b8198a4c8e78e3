"""mimex_jax.xla: mimex-jax's programs compile without XLA:CPU's YNNPACK fusions, per
program, and the user's own XLA_FLAGS or MIMEX_JAX_XLA_DEFAULTS=0 switch that off."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from mimex_jax import xla

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU backend options")


_PROGRAM = """
import re, jax, jax.numpy as jnp, numpy as np
from mimex_jax import xla
from mimex_jax.nn.encoders import ConvEncoder
enc = ConvEncoder(channels=32)  # 32 channels: jax gives these convolutions to YNNPACK
x = jnp.zeros((4, 20, 20, 3), jnp.uint8)
p = enc.init(jax.random.key(0), x)
fn = lambda p, x: enc.apply(p, x)
fusions = lambda j: len(re.findall(r"ynn_fusion[.0-9]* = ", j(fn).lower(p, x).compile().as_text()))
print(xla.compiler_options() == xla.CPU_OPTIONS, fusions(xla.jit), fusions(jax.jit),
      float(np.abs(np.asarray(xla.jit(fn)(p, x)) - np.asarray(jax.jit(fn)(p, x))).max()))
"""


def test_cpu_options_remove_ynn_fusions_from_our_programs_only() -> None:
    """In a fresh process with XLA's default flags (the suite's conftest flags already use
    emitters without YNNPACK fusions): our program has none, jax's default has some."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "MIMEX_JAX_XLA_DEFAULTS")}
    out = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True,
                         env=env, timeout=300, check=True).stdout.split()
    assert out[0] == "True"
    assert int(out[1]) == 0
    assert int(out[2]) > 0
    assert float(out[3]) < 1e-5


def test_user_flags_and_opt_out_win(monkeypatch) -> None:
    monkeypatch.setenv("XLA_FLAGS",
                       "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT")
    assert xla.compiler_options() is None
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setenv("MIMEX_JAX_XLA_DEFAULTS", "0")
    assert xla.compiler_options() is None
    monkeypatch.delenv("MIMEX_JAX_XLA_DEFAULTS")
    assert xla.compiler_options() == xla.CPU_OPTIONS
    # explicit compiler_options passed to xla.jit are kept as given
    f = xla.jit(lambda v: v * 2, compiler_options={})
    assert float(f(1.0)) == 2.0


def test_callable_inside_other_traces() -> None:
    """jax refuses compiler options on nested programs: inside a caller's jit, eval_shape
    or vmap, the function runs as a plain jit (the caller's program decides the options)."""
    f = xla.jit(lambda v: v * 2.0 + 1.0)
    assert float(f(1.0)) == 3.0
    assert float(jax.jit(lambda v: f(v) - 1.0)(2.0)) == 4.0
    assert jax.eval_shape(f, jax.ShapeDtypeStruct((3,), jnp.float32)).shape == (3,)
    assert jax.vmap(f)(jnp.arange(3.0)).tolist() == [1.0, 3.0, 5.0]
    assert float(f.lower(1.0).compile()(1.0)) == 3.0  # attributes: the top-level jit's


def test_mjx_programs_add_the_older_fusion_emitters(monkeypatch) -> None:
    """Programs that step MJX physics (Playground) also turn XLA:CPU's newer fusion
    emitters off; others do not; a user's XLA_FLAGS setting of either flag wins."""
    assert xla.steps_mjx("playground:PandaOpenCabinetSparse")
    assert not xla.steps_mjx("gymnax:DeepSea-bsuite")
    assert not xla.steps_mjx("brax:reacher_sparse")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("MIMEX_JAX_XLA_DEFAULTS", raising=False)
    assert xla.compiler_options() == xla.CPU_OPTIONS
    assert xla.compiler_options(mjx=True) == {**xla.CPU_OPTIONS, **xla.MJX_CPU_OPTIONS}
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert xla.compiler_options(mjx=True) == xla.CPU_OPTIONS
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true "
                       "--xla_cpu_experimental_ynn_fusion_type=")
    assert xla.compiler_options(mjx=True) is None
    f = xla.jit(lambda v: v * 2.0, mjx=True)
    assert float(f(1.5)) == 3.0
