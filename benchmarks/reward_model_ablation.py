"""Where does the MIMEx update spend its time? Interleaved A/B timing of variants.

Each variant is compiled once; then the variants are timed in turn, round after round,
so that background load affects all of them alike. Reports the median sequences/s.

Variants:

* ``default``: the library as it is;
* ``depth2``: 2 encoder blocks instead of 4 (the difference is the cost of two blocks);
* ``mb<N>``: gradient accumulated over chunks of N sequences;
* ``fastln``: LayerNorm with the one-pass variance;
* ``flaxdense``: flax's ``nn.Dense`` (plain autodiff weight gradient) instead of
  ``mimex_jax.nn.dense.Dense``;
* ``generalattn``: per-head batched matmul attention for every sequence length (no
  few-token path);
* ``erfcgelu``: ``jax.nn.gelu(approximate=False)`` (via ``erfc``) instead of the erf form;
* ``alldecoder``: the loss from the decoder's outputs at every position (the model
  ``mimex_apply`` runs) instead of the masked positions only;
* ``copiedcls``: the cls token copied into every sequence before the first encoder
  block instead of entering it as a shared row;
* ``before``: flaxdense, generalattn, erfcgelu, alldecoder and copiedcls together (the
  update as it was before these were written).

The patching variants change the model's building blocks for this process only.

    python benchmarks/reward_model_ablation.py default flaxdense generalattn erfcgelu before
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator

import flax.linen as nn
import jax

import mimex_jax.nn.transformer as transformer
from mimex_jax.nn.dense import dense_init
from mimex_jax.rewards import MIMExConfig, RewardBatch, mimex

MIMEX_MODULE = sys.modules["mimex_jax.rewards.mimex"]
PATCHES = ("fastln", "flaxdense", "generalattn", "erfcgelu", "alldecoder", "copiedcls")


def _flax_dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=dense_init, bias_init=nn.initializers.zeros, name=name)


def _plain_linear(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    return x @ kernel + bias


@contextlib.contextmanager
def patched(names: set[str]) -> Iterator[None]:
    """Swap the named building blocks in while a variant is traced and compiled."""
    model = MIMEX_MODULE.MaskedSequenceModel
    saved = (transformer.layer_norm, MIMEX_MODULE.layer_norm, transformer._dense,
             model._dense, transformer.FEW_TOKENS, transformer.gelu, MIMEX_MODULE._loss,
             transformer.linear)
    try:
        if "fastln" in names:
            fast = lambda name: nn.LayerNorm(epsilon=transformer.LN_EPS, name=name)  # noqa: E731
            transformer.layer_norm = MIMEX_MODULE.layer_norm = fast
        if "flaxdense" in names:
            transformer._dense = _flax_dense
            model._dense = lambda self, features, name: _flax_dense(features, name)
            transformer.linear = _plain_linear
        if "generalattn" in names:
            transformer.FEW_TOKENS = 0
        if "erfcgelu" in names:
            transformer.gelu = lambda x: jax.nn.gelu(x, approximate=False)
        if "alldecoder" in names:
            apply = MIMEX_MODULE._apply
            MIMEX_MODULE._loss = lambda *args: apply(*args, masked_only=False)[0]
        yield
    finally:
        (transformer.layer_norm, MIMEX_MODULE.layer_norm, transformer._dense, model._dense,
         transformer.FEW_TOKENS, transformer.gelu, MIMEX_MODULE._loss, transformer.linear
         ) = saved


BEFORE = {"flaxdense", "generalattn", "erfcgelu", "alldecoder", "copiedcls"}


def patches_of(variant: str) -> set[str] | None:
    """The building blocks a variant swaps in; None if it is not a patching variant."""
    if variant == "default":
        return set()
    if variant == "before":
        return set(BEFORE)
    if variant in PATCHES:
        return {variant}
    return None


def build(variant: str, seq: jax.Array):
    kw = {}
    names = patches_of(variant)
    if variant == "depth2":
        kw["depth"] = 2
    elif variant.startswith("mb"):
        kw["microbatch"] = int(variant[2:])
    elif names is None:
        raise ValueError(f"variant {variant!r} is unknown; allowed: default, depth2, mb<N>, "
                         f"before, {', '.join(PATCHES)}")
    if "copiedcls" in (names or set()):
        kw["shared_cls"] = False  # a config switch, not a patched building block
    with patched(names or set()):
        fn = mimex(MIMExConfig(seq_len=seq.shape[1], feature_dim=seq.shape[2], **kw))
        batch = RewardBatch(seq=seq)
        state = fn.init(jax.random.key(1), batch)
        compiled = jax.jit(fn.update).lower(state, batch, jax.random.key(2)).compile()
    return lambda: jax.block_until_ready(compiled(state, batch, jax.random.key(2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("variants", nargs="+")
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--feature-dim", type=int, default=384)
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    seq = jax.random.normal(jax.random.key(0), (args.batch, 5, args.feature_dim))
    fns = {v: build(v, seq) for v in args.variants}
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {v: [] for v in fns}
    for _ in range(args.rounds):
        for v, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[v].append(time.perf_counter() - t0)
    print("| variant | seq/s (median) |\n|---|---|")
    for v in fns:
        print(f"| {v} | {args.batch / statistics.median(times[v]):.0f} |")


if __name__ == "__main__":
    main()
