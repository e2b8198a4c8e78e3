"""Conv-encoder gradient steps inside ``lax.scan``: lax's VJP vs ``mimex_jax.nn.conv``.

Why: PPO's epochs x minibatches and DrQ-v2's updates run as a ``lax.scan`` in the fused
step, and on XLA:CPU the weight-gradient convolution that ``lax.conv_general_dilated``'s
own VJP emits falls to a naive loop nest inside a loop body (see ``mimex_jax/nn/conv.py``).
This times ``--steps`` SGD steps of DrQ-v2's conv encoder (4 layers, 32 channels) on
``--batch`` images, scanned, with both convolutions, and one step outside any loop for
reference; median of ``--repeats`` calls after one warm-up, with XLA's cost analysis.

    python benchmarks/conv_grad.py --size 32 --out benchmarks/results/conv_grad.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from common import cost_analysis, machine, summary, time_calls

from mimex_jax import xla  # noqa: E402
from mimex_jax.nn.conv import Conv
from mimex_jax.nn.init import orthogonal


class Encoder(nn.Module):
    """DrQ-v2's encoder with a choice of convolution module."""

    conv: str

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32) / 255.0 - 0.5
        for i, s in enumerate((2, 1, 1, 1)):
            kw = dict(kernel_init=orthogonal(math.sqrt(2.0)), name=f"conv_{i}")
            layer = (nn.Conv(32, (3, 3), strides=(s, s), padding="VALID", **kw)
                     if self.conv == "lax" else Conv(32, (3, 3), strides=(s, s), **kw))
            x = nn.relu(layer(x))
        return x.reshape(x.shape[0], -1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=32, help="image height = width")
    p.add_argument("--channels", type=int, default=9, help="3 x frame stack")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=8, help="scanned gradient steps")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.integers(0, 256, (a.steps, a.batch, a.size, a.size, a.channels),
                                  dtype=np.uint8))
    rows = []
    for conv in ("lax", "mimex_jax"):
        enc = Encoder(conv)
        params = enc.init(jax.random.key(0), xs[0])

        def loss(p, x, enc=enc):
            return jnp.mean(enc.apply(p, x) ** 2)

        def scanned(p, xs, loss=loss):
            def body(p, x):
                g = jax.grad(loss)(p, x)
                return jax.tree.map(lambda w, d: w - 1e-3 * d, p, g), None
            return jax.lax.scan(body, p, xs)[0]

        for kind, fn, args in (("scan", scanned, (params, xs)),
                               ("one step", jax.grad(loss), (params, xs[0]))):
            compiled = xla.jit(fn).lower(*args).compile()
            t = summary(time_calls(lambda c=compiled, a=args: c(*a), a.repeats, 1))
            rows.append({"conv": conv, "kind": kind, "steps": a.steps if kind == "scan" else 1,
                         **t, **cost_analysis(compiled)})
            print(f"{conv:10s} {kind:9s} median {t['median_s'] * 1e3:9.1f} ms  "
                  f"GFLOP {rows[-1]['flops'] / 1e9:7.2f}", flush=True)
    by = {(r["conv"], r["kind"]): r["median_s"] for r in rows}
    ratio = by[("lax", "scan")] / by[("mimex_jax", "scan")]
    print(f"scan: lax / mimex_jax = {ratio:.1f}x; mimex_jax scan / ({a.steps} x one step) = "
          f"{by[('mimex_jax', 'scan')] / (a.steps * by[('mimex_jax', 'one step')]):.2f}")
    if a.out:
        a.out.write_text(json.dumps({"machine": machine(), "args": vars(a) | {"out": str(a.out)},
                                     "rows": rows, "scan_speedup": ratio}, indent=2))


if __name__ == "__main__":
    main()
