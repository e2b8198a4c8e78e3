"""Methods (intrinsic rewards) and MIMEx ablation factors of the exploration benchmark."""

from __future__ import annotations

import dataclasses
from typing import Any

from mimex_jax.bench.exploration.tasks import Instance
from mimex_jax.rewards import MIMExConfig
from mimex_jax.trainer import HParams, TrainConfig


@dataclasses.dataclass(frozen=True)
class Method:
    """An intrinsic reward: the trainer's ``reward`` kind plus config overrides."""

    name: str
    reward: str
    cfg: tuple[tuple[str, Any], ...] = ()
    note: str = ""


_PAPER_MIMEX = (("lr", 1e-4), ("mask_ratio", 0.7))

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("none", "none", note="PPO, extrinsic reward only"),
    Method("rnd", "rnd", note="RND on the observation"),
    Method("icm", "icm", note="ICM forward-model error"),
    Method("mimex", "mimex", cfg=(("seq_len", 5), ("mimex", _PAPER_MIMEX)),
           note="MIMEx, paper defaults: T=5, uniform token masks at 0.7, encoder 128/4/4, "
                "decoder 64/1/2, cls token, reward-model lr 1e-4"),
    Method("mimex-lr1e-3", "mimex", cfg=(("seq_len", 5), ("mimex", (("lr", 1e-3),
                                                                     ("mask_ratio", 0.7)))),
           note="MIMEx with the reward-model lr raised to 1e-3"),
)}
# ``<bonus>-centered`` / ``<bonus>-batchcentered`` (not in the default set): the bonus minus
# its running / its batch mean, over its running std (``center_intrinsic``): zero-mean, so
# it does not pay for long episodes.
METHODS.update({f"{m.name}-{label}": Method(
    f"{m.name}-{label}", m.reward, cfg=m.cfg + (("center_intrinsic", how),),
    note=f"{m.note}; minus its {how} mean")
    for m in [METHODS["rnd"], METHODS["icm"], METHODS["mimex"]]
    for label, how in (("centered", "running"), ("batchcentered", "batch"))})
DEFAULT_METHODS = ("none", "rnd", "icm", "mimex")


@dataclasses.dataclass(frozen=True)
class Factor:
    """One ablated MIMEx setting: where it lives and the values tried."""

    name: str
    title: str
    where: str                          # "hp" (vmapped), "cfg" or "mimex" (one program each)
    values: tuple[Any, ...]


ABLATIONS: dict[str, Factor] = {f.name: f for f in (
    Factor("mask_ratio", "mask ratio", "hp", (0.3, 0.5, 0.7, 0.9)),
    Factor("k_expl", "k_expl", "hp", (0.01, 0.05, 0.5)),
    Factor("seq_len", "sequence length T", "cfg", (2, 3, 5, 10)),
    Factor("mask", "mask distribution", "mimex", ("uniform_token", "last_token", "full")),
    Factor("n_mask", "n_mask", "mimex", (1, 5)),
    Factor("lr", "reward-model lr", "mimex", (1e-4, 1e-3)),
)}


def method_config(inst: Instance, method: Method, cfg_over: dict | None = None
                  ) -> tuple[TrainConfig, HParams]:
    """The instance's config and hparams for ``method`` (k_expl 0 without a bonus)."""
    cfg = dataclasses.replace(inst.cfg, **{"reward": method.reward, **dict(method.cfg),
                                           **(cfg_over or {})})
    hp = inst.hp if method.reward != "none" else inst.hp._replace(k_expl=0.0)
    return cfg, hp


def with_mimex(cfg: TrainConfig, **over: Any) -> TrainConfig:
    """``cfg`` with entries of its ``mimex`` model config replaced."""
    return dataclasses.replace(cfg, mimex=tuple(sorted({**dict(cfg.mimex), **over}.items())))


def effective_setting(seq_len: int, mimex: Any, name: str) -> Any:
    """The value of ablated setting ``name`` given ``seq_len`` and a ``mimex`` config
    (pairs), model defaults filled in."""
    if name == "seq_len":
        return seq_len
    value = dict(mimex).get(name, getattr(MIMExConfig, name, None))
    return "uniform_token" if name == "mask" and value is None else value


def ablation_programs(inst: Instance, factors: list[str]
                      ) -> list[tuple[str, TrainConfig, list[tuple[dict, HParams]]]]:
    """(program name, config, variants) for the ablations of one task, duplicates dropped.

    The base (paper MIMEx) runs once; every "cfg"/"mimex" value that differs from it is
    its own program; each "hp" factor is one program over all its values (the base value
    included, so each sweep also contains its own reference point).
    """
    cfg0, hp0 = method_config(inst, METHODS["mimex"])
    base_labels = {"method": "mimex", "ablation": "base", "value": None}
    programs = [("base", cfg0, [(base_labels, hp0)])]
    for name in factors:
        f = ABLATIONS[name]
        if f.where == "hp":
            values = sorted(set(f.values) | {float(getattr(hp0, name))})
            variants = [({"method": "mimex", "ablation": name, "value": v},
                         hp0._replace(**{name: v})) for v in values]
            programs.append((name, cfg0, variants))
            continue
        for v in f.values:
            if v == effective_setting(cfg0.seq_len, cfg0.mimex, name):
                continue   # the base run
            cfg = (dataclasses.replace(cfg0, **{name: v}) if f.where == "cfg"
                   else with_mimex(cfg0, **{name: v}))
            programs.append((f"{name}={v}", cfg,
                             [({"method": "mimex", "ablation": name, "value": v}, hp0)]))
    return programs
