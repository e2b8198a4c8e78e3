"""Published baseline scores to print beside ours (numbers only, each with its exact source).

Craftax (Matthews et al., "Craftax: A Lightning-Fast Benchmark for Open-Ended Reinforcement
Learning", ICML 2024, arXiv 2402.16801). The per-method numbers below are the "Scoreboard" of
the Craftax repository's README (github.com/MichaelTMatthews/Craftax, README.md at commit
0a2f7f99ed57fed8b22e8ec21e0d784497745832), which reports "reward as a % of the maximum (226)"
on the main Craftax benchmark after 1e9 (Craftax-1B) and 1e6 (Craftax-1M) environment steps.
Only the rows of the paper's own baselines (PPO, PPO-RNN, RND, ICM, E3B, code in
Craftax_Baselines) are copied; the README's outside entries (PPO-GTrXL, Efficient MBRL) are
marked there as unverified and are left out.

Craftax-Classic: the stored sources give no per-method table. The only number found is the
paper's abstract: PPO with 1e9 interactions "averages 90% of the optimal reward"; it is
recorded as such. PPO-RND / ICM / E3B on Craftax-Classic at 1M or 1B were NOT found and are
not listed (no guessed values).

To compare a run of ours with these, use the episode return as a % of the maximum return:
``100 * episode_return / mimex_jax.envs.craftax_suite.MAX_RETURN[name]`` (226 for Craftax,
22 for Craftax-Classic). Our ``episode_achievements`` metric (% of achievements unlocked,
unweighted) is a different number on Craftax, whose achievements carry unequal rewards.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CRAFTAX", "CRAFTAX_CLASSIC", "published"]

_README = ("Craftax README.md 'Scoreboard', github.com/MichaelTMatthews/Craftax at commit "
           "0a2f7f99ed57fed8b22e8ec21e0d784497745832 (Matthews et al. 2024, arXiv 2402.16801)")

# env id -> budget (env steps) -> method -> reward as a % of the maximum return.
CRAFTAX: dict[str, Any] = {
    "env_id": "craftax:Craftax-Symbolic-v1",
    "metric": "episode return as % of the maximum return (226)",
    "source": _README,
    "scores": {
        1_000_000_000: {"PPO-RNN": 15.3, "RND": 12.0, "PPO": 11.9, "ICM": 11.9, "E3B": 11.0},
        1_000_000: {"PPO-RNN": 2.3, "RND": 2.2, "PPO": 2.2, "ICM": 2.2, "E3B": 2.2},
    },
    "note": "the README does not say which observation (symbolic or pixels) the scoreboard "
            "used",
}

CRAFTAX_CLASSIC: dict[str, Any] = {
    "env_id": "craftax:Craftax-Classic-Symbolic-v1",
    "metric": "episode return as % of the optimal return",
    "source": "Matthews et al. 2024, arXiv 2402.16801, abstract: 'A run of PPO using 1 billion "
              "environment interactions ... averages 90% of the optimal reward'",
    "scores": {1_000_000_000: {"PPO": 90.0}},
    "note": "approximate ('averages 90%'); no per-method Craftax-Classic table in the stored "
            "sources, so PPO-RND / ICM / E3B are not listed",
}


def published(env_id: str) -> dict[str, Any] | None:
    """The published entry for ``env_id`` (``CRAFTAX`` / ``CRAFTAX_CLASSIC``), else ``None``."""
    for entry in (CRAFTAX, CRAFTAX_CLASSIC):
        if entry["env_id"] == env_id:
            return entry
    return None
