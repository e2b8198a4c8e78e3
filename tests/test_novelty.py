"""The novelty diagnostic (mimex_jax.bench.novelty): streams, scores, ranking, CLI.

The fast tests check that the streams are what the benchmark says (skew, never-visited
cells, jump rate, probe groups), that the AUC is the Mann-Whitney statistic, and that
the whole pipeline ranks: a count oracle on the one-hot stream reaches AUC ~1 while a
constant bonus gets exactly 0.5. The slow test runs ``--quick`` end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimex_jax import cli
from mimex_jax.bench import novelty as nv
from mimex_jax.rewards import MIMExConfig, mimex

CFG = nv.StreamConfig()


def test_state_stream_is_skewed_and_never_visits_unseen_cells() -> None:
    cells, actions = (np.asarray(x) for x in nv.state_windows(jax.random.key(0), CFG, 8192, 4))
    counts = np.bincount(cells[:, -1], minlength=nv.CELLS)
    assert counts[nv.SEEN:].sum() == 0
    assert cells.max() < nv.SEEN                     # not even as context
    lo, hi = nv.STATE_GROUPS["frequent"], nv.STATE_GROUPS["rare"]
    assert counts[lo[0]:lo[1]].mean() > 10 * counts[hi[0]:hi[1]].mean() > 0
    # Zipf(1): cell 0 is seen about twice as often as cell 1
    assert 1.7 < counts[0] / counts[1] < 2.3
    # context: +1 moves, staying at cell 0 at the wall; actions say which
    step = np.diff(cells, axis=1)
    assert set(np.unique(step)) <= {0, 1}
    np.testing.assert_array_equal(actions, np.where(step == 1, nv.PLUS, nv.STAY))


def test_state_stream_margin_keeps_windows_off_the_wall() -> None:
    cfg = nv.StreamConfig(margin=4)
    cells = np.asarray(nv.state_windows(jax.random.key(6), cfg, 4096, 5)[0])
    assert cells[:, -1].min() >= 4 and cells[:, -1].max() < nv.SEEN
    assert np.all(np.diff(cells, axis=1) == 1)         # never cut at the wall
    counts = np.bincount(cells[:, -1], minlength=nv.CELLS)
    assert counts[4] > counts[5] > counts[20]          # the Zipf law starts at cell 4
    assert nv.state_groups(cfg)["frequent"] == (4, 12)
    with pytest.raises(ValueError, match="margin"):
        nv.StreamConfig(margin=-1)


def _check_ring(cells: np.ndarray, actions: np.ndarray) -> None:
    step = np.diff(cells, axis=1) % nv.CELLS
    np.testing.assert_array_equal(step, np.asarray(nv.OFFSETS)[actions] % nv.CELLS)


def test_transition_stream_jump_rate_and_uniform_cells() -> None:
    cells, actions = (np.asarray(x) for x in
                      nv.transition_windows(jax.random.key(1), CFG, 8192, 5))
    _check_ring(cells, actions)
    freq = np.bincount(actions.ravel(), minlength=nv.NUM_ACTIONS) / actions.size
    assert abs(freq[nv.JUMP] - CFG.jump_prob) < 0.01
    assert freq[nv.NOVEL_JUMP] == 0 and freq[nv.STAY] == 0
    visits = np.bincount(cells[:, -1], minlength=nv.CELLS)
    assert visits.min() > 0.6 * visits.mean()      # every cell about equally common


def test_probe_groups() -> None:
    params = nv.stream_params(jax.random.key(2), CFG)
    n, t = 64, 5
    for rarity in range(len(nv.RARITIES)):
        w = nv.probe_windows(jax.random.key(3), CFG, params, jnp.asarray(0),
                             jnp.asarray(rarity), n, t)
        cells, actions = np.asarray(w.cells), np.asarray(w.actions)
        assert cells.shape == (3 * n, t) and w.obs.shape == (3 * n, t, nv.OBS_DIM)
        for g, name in enumerate(nv.GROUPS):
            c, a = cells[g * n:(g + 1) * n], actions[g * n:(g + 1) * n]
            if nv.RARITIES[rarity] == "state":
                lo, hi = nv.STATE_GROUPS[name]
                assert lo <= c[:, -1].min() and c[:, -1].max() < hi
            else:
                _check_ring(c, a)
                assert set(np.unique(a[:, :-1])) <= {nv.PLUS, nv.MINUS}
                want = {"frequent": {nv.PLUS, nv.MINUS}, "rare": {nv.JUMP},
                        "unseen": {nv.NOVEL_JUMP}}[name]
                assert set(np.unique(a[:, -1])) == want


def test_render_observation_kinds() -> None:
    params = nv.stream_params(jax.random.key(4), CFG)
    cells = jnp.arange(nv.CELLS)[:, None]
    obs = [np.asarray(nv.render(jax.random.key(5), CFG, params, cells, jnp.asarray(k)))
           for k in range(len(nv.OBS_KINDS))]
    onehot, cont, image = (o[:, 0] for o in obs)
    np.testing.assert_array_equal(onehot, np.eye(nv.CELLS))
    assert np.abs(cont - np.asarray(params.centres)).max() < 6 * CFG.noise
    assert image.shape == (nv.CELLS, nv.OBS_DIM) and np.all(np.isfinite(image))
    assert 0.5 < image.std() < 2.0                 # projected to about unit variance
    # neighbouring blob positions look more alike than far ones
    far = np.linalg.norm(image[0] - image[63])
    assert np.linalg.norm(image[0] - image[1]) < far
    frames = np.asarray(nv.image_frames(CFG, jnp.asarray([9, 27, 54])))
    px = np.arange(CFG.image_side) + 0.5
    for f, centre in zip(frames, (3.0, 7.0, 13.0), strict=True):  # 2 px per grid cell
        assert np.sum(f * px[:, None]) / f.sum() == pytest.approx(centre, abs=0.05)
        assert np.sum(f * px[None, :]) / f.sum() == pytest.approx(centre, abs=0.05)


def test_roc_auc_is_the_mann_whitney_statistic() -> None:
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, 40).astype(np.float32)   # many ties
    neg = rng.integers(0, 5, 30).astype(np.float32)
    brute = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert float(nv.roc_auc(jnp.asarray(pos), jnp.asarray(neg))) == pytest.approx(brute)
    assert float(nv.roc_auc(jnp.ones(3), jnp.zeros(4))) == 1.0
    assert float(nv.roc_auc(jnp.zeros(3), jnp.ones(4))) == 0.0
    s = nv.group_scores(jnp.asarray([1.0, 1.0, 2.0, 4.0, 3.0, 3.0]), 2)
    assert float(s["auc_rare"]) == 1.0 and float(s["ratio_rare"]) == 3.0
    assert float(s["ratio_unseen"]) == 3.0 and float(s["mean_frequent"]) == 1.0


def test_validation_and_variant_groups() -> None:
    with pytest.raises(ValueError, match="jump_prob"):
        nv.StreamConfig(jump_prob=0.0)
    with pytest.raises(ValueError, match="eval_steps"):
        nv.Plan(batch=4, eval_steps=(1, 2), per_group=4)
    assert nv.eval_steps_for(128) == (0, 8, 16, 32, 64, 128)
    assert nv.expand_variants(["core", "rnd"]) == list(nv.GROUPS_OF_VARIANTS["core"])
    assert set(nv.expand_variants(["all"])) == set(nv.VARIANTS) - {"constant"}
    with pytest.raises(ValueError, match="--variants"):
        nv.expand_variants(["nope"])
    # every MIMEx variant builds a valid config (validation runs before anything compiles)
    for name in nv.expand_variants(["sweep", "mimex"]):
        nv.make_bonus(nv.VARIANTS[name])


def test_with_hparams_sets_lr_and_mask_ratio() -> None:
    tiny = MIMExConfig(seq_len=2, feature_dim=4, embed_dim=8, depth=1, num_heads=1,
                       decoder_embed_dim=8, decoder_num_heads=1)
    state = nv.with_hparams(mimex(tiny).init(jax.random.key(0)), 1e-3, 0.5)
    assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(1e-3)
    assert float(state.mask_ratio) == 0.5


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One tiny CLI run: the count oracle and the constant bonus on the one-hot streams."""
    out = tmp_path_factory.mktemp("novelty") / "nov.json"
    assert cli.main(["bench", "novelty", "--variants", "oracle", "constant", "--obs",
                     "onehot", "--seeds", "2", "--steps", "16", "--batch", "32", "--probes",
                     "64", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    res["md"] = out.with_suffix(".md").read_text()
    res["by"] = {(e["bonus"], e["rarity"]): e for e in res["results"]}
    return res


def test_count_oracle_ranks_rare_above_frequent(ranked) -> None:
    for rarity in nv.RARITIES:
        e = ranked["by"][("oracle", rarity)]
        auc = np.asarray(e["per_seed"]["auc_rare"])        # [seed, eval]
        np.testing.assert_array_equal(auc[:, 0], 0.5)      # untrained: all counts 0, ties
        assert auc[:, -1].min() > 0.95, rarity             # every seed
        assert e["final"]["auc_unseen"]["min"] > 0.95
        assert e["final"]["ratio_rare"]["min"] > 1.5


def test_constant_bonus_gives_chance(ranked) -> None:
    for rarity in nv.RARITIES:
        e = ranked["by"][("constant", rarity)]
        np.testing.assert_array_equal(e["per_seed"]["auc_rare"], 0.5)
        assert e["final"]["auc_rare"] == {"mean": 0.5, "min": 0.5, "max": 0.5}
        assert e["final"]["ratio_rare"]["mean"] is None   # 0 / 0


def test_cli_result_records_commit_command_and_report(ranked) -> None:
    assert ranked["complete"] and ranked["git_commit"] != "unknown"
    assert ranked["seeds"] == [0, 1] and ranked["plan"]["eval_steps"] == [0, 1, 2, 4, 8, 16]
    assert ranked["command"].startswith("mimex-jax bench novelty --variants oracle")
    assert "| oracle | 1.00 [" in ranked["md"]
    assert "| constant | 0.50 [0.50, 0.50] | 0.50 [0.50, 0.50] |" in ranked["md"]


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    assert nv.main(["--quick", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {e["bonus"] for e in res["results"]} == {"oracle", "rnd", "icm", "mimex",
                                                    "mimex-lr=1e-3"}
    assert len(res["results"]) == 5 * 3 * 2


def _entry(bonus: str, kind: str, aucs: list[float]) -> dict:
    per = {"auc_rare": [[0.5, a] for a in aucs]}
    return {"bonus": bonus, "kind": kind, "obs": "onehot", "rarity": "state",
            "per_seed": per, "final": {"auc_rare": nv._stat(np.asarray(aucs))}}


def test_delta_table_pairs_seeds_and_merge_checks_plans() -> None:
    res = [_entry("rnd", "rnd", [1.0, 1.0]), _entry("mimex", "mimex", [0.6, 0.8]),
           _entry("mimex-T=1", "mimex", [0.9, 0.8])]
    md = nv.delta_table(res, "mimex")
    assert "| mimex-T=1 | +0.15 [+0.00, +0.30] |" in md and "| rnd |" not in md
    a = {"seeds": [0], "plan": {"batch": 4}, "command": "a", "git_commit": "x",
         "wall_seconds": 1.0, "results": res[:1]}
    b = {**a, "command": "b", "results": res[1:]}
    merged = nv.merge([a, b])
    assert merged["results"] == res and merged["command"] == "a ; b"
    with pytest.raises(ValueError, match="seeds or plan"):
        nv.merge([a, {**b, "seeds": [0, 1]}])
