"""The published-baselines data file: every entry cites a source and holds percentages."""

from __future__ import annotations

from mimex_jax.bench import published


def test_entries_cite_sources_and_hold_percentages() -> None:
    for entry in (published.CRAFTAX, published.CRAFTAX_CLASSIC):
        assert entry["source"] and "2402.16801" in entry["source"]
        assert published.published(entry["env_id"]) is entry
        for budget, rows in entry["scores"].items():
            assert budget in (1_000_000, 1_000_000_000)
            assert rows and all(0.0 <= v <= 100.0 for v in rows.values())
    assert published.published("minigrid:DoorKey-8x8") is None
    # the README's Craftax-1M rows: the paper's baselines all near 2% of the maximum
    assert published.CRAFTAX["scores"][1_000_000]["RND"] == 2.2
