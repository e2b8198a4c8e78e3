"""The ``minigrid:`` suite (xminigrid MiniGrid tasks) behind the env interface."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("xminigrid", reason="the minigrid: suite needs xminigrid "
                                        "(pip install mimex-jax[envs])")

from _runs import assert_same_state  # noqa: E402

from mimex_jax import envs  # noqa: E402
from mimex_jax.envs.minigrid_suite import onehot_view  # noqa: E402

N = 8
LIMIT = 12  # steps per episode: random walks reach the goal in some episodes, not in all
STEPS = 300


@pytest.fixture(scope="module")
def walk():
    """One compiled random walk: Empty-5x5 (goal 4 cells away), N envs, auto-reset."""
    env = envs.make("minigrid:Empty-5x5", num_envs=N, episode_length=LIMIT)

    def run(key):
        def body(s, k):
            a = jax.random.randint(k, (N,), 0, 3)  # forward / turn right / turn left
            s = env.step(s, a)
            return s, (s.reward, s.done, s.info["truncation"], s.metrics,
                       s.pipeline_state.state.step_num, s.obs, s.info["terminal_obs"])

        k0, k1 = jax.random.split(key)
        s0 = env.reset(k0)
        last, out = jax.lax.scan(body, s0, jax.random.split(k1, STEPS))
        return s0, last, out

    s0, last, out = jax.jit(run)(jax.random.key(1))
    return env, s0, last, jax.tree.map(np.asarray, out)


def test_reset_step_shapes_dtypes(walk):
    env, s, s2, _ = walk
    for st in (s, s2):
        assert st.obs.shape == (N, 7 * 7 * 25) and st.obs.dtype == jnp.float32
        assert st.reward.shape == (N,) and st.reward.dtype == jnp.float32
        assert st.done.shape == (N,) and st.done.dtype == jnp.float32
        assert set(np.unique(np.asarray(st.obs))) <= {0.0, 1.0}
        # one tile and one colour per cell
        np.testing.assert_array_equal(np.asarray(st.obs).reshape(N, 49, 25).sum(-1), 2.0)
    # the pytree keeps its structure and dtypes (carried through lax.scan)
    assert jax.tree.structure(s) == jax.tree.structure(s2)
    assert [x.dtype for x in jax.tree.leaves(s)] == [x.dtype for x in jax.tree.leaves(s2)]


def test_success_means_goal_reached(walk):
    """Some episodes end at the goal; success is set exactly on terminal steps with positive
    reward, never on time-limit ends."""
    r, d, tr, m = walk[3][:4]
    succ = m["success"]
    assert succ.sum() >= 1 and tr.sum() >= 1
    np.testing.assert_array_equal(succ, ((r > 0) & (d == 1) & (tr == 0)).astype(np.float32))
    np.testing.assert_array_equal(m["episode_success"], succ)  # success ends the episode
    np.testing.assert_array_equal(m["episode_done"], d)
    np.testing.assert_array_equal(r[tr == 1], 0.0)
    # MiniGrid's reward: 1 - 0.9 * steps / max_steps
    np.testing.assert_allclose(r[succ == 1], 1 - 0.9 * m["episode_length"][succ == 1] / LIMIT,
                               atol=1e-6)


def test_time_limit_and_auto_reset(walk):
    r, d, tr, m, step_num, obs, term_obs = walk[3]
    np.testing.assert_array_equal(m["episode_length"][tr == 1], LIMIT)
    assert np.all(m["episode_length"][d == 1] <= LIMIT)
    # after an episode ends the state is a fresh one (step 0); otherwise it counts on
    assert np.all(step_num[d == 1] == 0)
    assert np.all(step_num[d == 0] > 0)
    # the terminal observation is kept aside; on other steps it is the observation itself
    np.testing.assert_array_equal(term_obs[d == 0], obs[d == 0])
    assert np.any(term_obs[d == 1] != obs[d == 1])


def test_vmap_over_keys_equals_separate_calls():
    """vmap over keys gives what the unbatched env gives per key (``lax.map`` runs the
    unbatched code path one key at a time; both in one compile)."""
    base = envs.make_base("minigrid:DoorKey-6x6")
    keys = jax.random.split(jax.random.key(4), 3)
    actions = jnp.array([0, 1, 3], jnp.int32)

    def one(k, a):
        return base.step(base.reset(k), a)

    batched, separate = jax.jit(lambda k, a: (jax.vmap(one)(k, a), jax.lax.map(
        lambda ka: one(*ka), (k, a))))(keys, actions)
    assert_same_state(separate, batched)


def test_spec_and_ids():
    assert "minigrid:DoorKey-8x8" in envs.list_envs("minigrid")
    spec = envs.make_base("minigrid:DoorKey-8x8").spec
    assert spec.action_kind == "discrete" and spec.num_actions == 6
    assert spec.observation_size == 7 * 7 * 25 and spec.has_success
    assert spec.episode_length == 10 * 8 * 8  # MiniGrid's own limit
    small = envs.make_base("minigrid:DoorKey-8x8", view_size=3, max_steps=50).spec
    assert (small.observation_size, small.episode_length) == (3 * 3 * 25, 50)
    with pytest.raises(ValueError, match="KeyCorridor"):
        envs.make_base("minigrid:KeyCorridor")
    with pytest.raises(ValueError, match="allowed"):
        envs.make_base("minigrid:DoorKey-8x8", size=3)
    with pytest.raises(ValueError, match="integer >= 1"):
        envs.make_base("minigrid:DoorKey-8x8", max_steps=0)


def test_onehot_view():
    view = jnp.array([[[2, 0], [12, 11]]], jnp.uint8)  # 1 x 2 cells
    x = np.asarray(onehot_view(view)).reshape(2, 25)
    assert x.sum(axis=1).tolist() == [2.0, 2.0]
    assert x[0, 2] == 1 and x[0, 13 + 0] == 1 and x[1, 12] == 1 and x[1, 13 + 11] == 1


# ------------------------------------------------------------------ KeyCorridor (our port)

@pytest.mark.parametrize("name,size,rows", [("KeyCorridorS3R3", 3, 3),
                                            ("KeyCorridorS4R3", 4, 3)])
def test_key_corridor_layout(name: str, size: int, rows: int) -> None:
    """Over 16 resets: one locked door, on the corridor's right wall, in the ball's row; the
    key of its colour in a left room; the agent in the corridor; every side room has one
    closed door to the corridor; the goal is holding this ball; MiniGrid's time limit."""
    from xminigrid.core.constants import Tiles

    assert f"minigrid:{name}" in envs.list_envs("minigrid")
    env = envs.make_base(f"minigrid:{name}")
    assert env.spec.episode_length == 30 * size ** 2 and env.spec.num_actions == 6
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(7), 16)).pipeline_state
    grids, goals = np.asarray(ts.state.grid), np.asarray(ts.state.goal_encoding)
    pos = np.asarray(ts.state.agent.position)
    s = size - 1
    assert grids.shape[1:] == (s * rows + 1, 3 * s + 1, 2)
    ball_rows = set()
    for g, goal, (ay, ax) in zip(grids, goals, pos, strict=True):
        tiles, colours = g[..., 0], g[..., 1]
        (ly,), (lx,) = np.nonzero(tiles == Tiles.DOOR_LOCKED)
        assert lx == 2 * s
        (ky,), (kx,) = np.nonzero(tiles == Tiles.KEY)
        (by,), (bx,) = np.nonzero(tiles == Tiles.BALL)
        assert 0 < kx < s and 2 * s < bx < 3 * s and s < ax < 2 * s
        assert (ay - 1) // s == rows // 2  # the corridor's middle room
        assert colours[ky, kx] == colours[ly, lx]
        assert (by - 1) // s == (ly - 1) // s  # ball behind the locked door
        ball_rows.add(int((by - 1) // s))
        closed = np.argwhere(tiles == Tiles.DOOR_CLOSED)
        assert len(closed) == 2 * rows - 1 and set(closed[:, 1]) <= {s, 2 * s}
        for x in (s, 2 * s):  # one door per room along each corridor wall
            doors = np.argwhere(np.isin(tiles[:, x], [Tiles.DOOR_CLOSED, Tiles.DOOR_LOCKED]))
            assert sorted(((doors[:, 0] - 1) // s).tolist()) == list(range(rows))
        assert goal[0] == 1 and goal[1] == Tiles.BALL and goal[2] == colours[by, bx]
    assert len(ball_rows) > 1  # the locked room moves between resets


def test_key_corridor_is_solved_by_minigrid_moves() -> None:
    """S3R1 (key | corridor | locked room with the ball): open the door, take the key, unlock,
    put the key down, pick up the ball. Success and MiniGrid's reward come on the last move
    only."""
    env = envs.make_base("minigrid:KeyCorridorS3R1")
    step = jax.jit(env.step)
    for seed in range(4):
        st = env.reset(jax.random.key(seed))
        turns = (int(st.pipeline_state.state.agent.direction) - 3) % 4  # to face left (3)
        # forward 0, right 1, left 2, pick up 3, put down 4, toggle 5
        moves = [2] * turns + [5, 0, 3, 1, 1, 0, 5, 0, 2, 2, 4, 1, 1, 3]
        for i, a in enumerate(moves):
            st = step(st, jnp.asarray(a))
            last = i == len(moves) - 1
            assert float(st.metrics["success"]) == float(last), (seed, i)
            assert float(st.done) == float(last)
        np.testing.assert_allclose(float(st.reward), 1 - 0.9 * len(moves) / 270, rtol=1e-6)


def test_key_corridor_needs_empty_hands() -> None:
    """Facing the ball with the key in hand, pick-up does nothing (MiniGrid's rule)."""
    env = envs.make_base("minigrid:KeyCorridorS3R1")
    step = jax.jit(env.step)
    st = env.reset(jax.random.key(0))
    turns = (int(st.pipeline_state.state.agent.direction) - 3) % 4
    for a in [2] * turns + [5, 0, 3, 1, 1, 0, 5, 0, 3]:  # ... unlock, step in, pick up
        st = step(st, jnp.asarray(a))
    assert float(st.done) == 0.0 and float(st.metrics["success"]) == 0.0
    assert int(st.pipeline_state.state.agent.pocket[0]) != 0  # still holding the key


# ------------------------------------------------------------------ MultiRoom (our port)

def _check_multiroom(rooms: np.ndarray, doors: np.ndarray, side: int = 25) -> None:
    """Rooms inside the grid, interiors disjoint, sides 4..S; door i on the rims of rooms i
    and i + 1 with one neighbour inside each (so the door joins exactly those two)."""
    inner = []
    for x, y, w, h in rooms:
        assert x >= 0 and y >= 0 and x + w <= side and y + h <= side and min(w, h) >= 4
        m = np.zeros((side, side), bool)
        m[y + 1:y + h - 1, x + 1:x + w - 1] = True
        assert not any((m & o).any() for o in inner)
        inner.append(m)
    for i, (dy, dx) in enumerate(doors):
        nbrs = [(dy + a, dx + b) for a, b in ((0, 1), (1, 0), (0, -1), (-1, 0))
                if 0 <= dy + a < side and 0 <= dx + b < side]
        assert any(inner[i][p] for p in nbrs) and any(inner[i + 1][p] for p in nbrs)
        assert not inner[i][dy, dx] and not inner[i + 1][dy, dx]


def _reachable(tiles: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Cells reachable from ``start`` through non-wall cells (closed doors open)."""
    from xminigrid.core.constants import Tiles

    seen = np.zeros(tiles.shape, bool)
    todo = [start]
    while todo:
        y, x = todo.pop()
        if seen[y, x] or tiles[y, x] == Tiles.WALL:
            continue
        seen[y, x] = True
        todo += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    return seen


def test_multiroom_layouts_are_minigrid_chains() -> None:
    from mimex_jax.envs.minigrid_tasks import multiroom_bank, multiroom_layout

    rooms, doors = multiroom_bank(jax.random.key(3), 6, 10, 64, chunk=512)
    assert rooms.shape == (64, 6, 4) and doors.shape == (64, 5, 2)
    assert len({r.tobytes() for r in rooms}) == 64  # distinct layouts
    assert rooms[:, :, 2:].max() <= 10
    for r, d in zip(rooms, doors, strict=True):
        _check_multiroom(r, d)
    # the rejection loop itself (what the bank stands in for) ends on a valid layout
    r, d = jax.jit(jax.vmap(lambda k: multiroom_layout(k, 4, 5)))(
        jax.random.split(jax.random.key(5), 8))
    for ri, di in zip(np.asarray(r), np.asarray(d), strict=True):
        _check_multiroom(ri, di)


@pytest.mark.parametrize("name,rooms", [("MultiRoom-N2-S4", 2), ("MultiRoom-N6", 6)])
def test_multiroom_resets(name: str, rooms: int) -> None:
    """Agent in the first room, the goal square in the last, reachable through the N - 1
    closed doors (neighbouring doors in different colours); MiniGrid's 20 N step limit."""
    from xminigrid.core.constants import Tiles

    env = envs.make_base(f"minigrid:{name}")
    assert f"minigrid:{name}" in envs.list_envs("minigrid")
    assert env.spec.episode_length == 20 * rooms and env.spec.has_success
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(1), 12)).pipeline_state
    grids, pos = np.asarray(ts.state.grid), np.asarray(ts.state.agent.position)
    layouts = set()
    for g, (ay, ax) in zip(grids, pos, strict=True):
        tiles = g[..., 0]
        (gy,), (gx,) = np.nonzero(tiles == Tiles.GOAL)
        doors = np.argwhere(tiles == Tiles.DOOR_CLOSED)
        assert len(doors) == rooms - 1
        assert tiles[ay, ax] == Tiles.FLOOR and _reachable(tiles, (ay, ax))[gy, gx]
        colours = sorted(g[y, x, 1] for y, x in doors)
        assert rooms == 2 or len(set(colours)) > 1
        layouts.add(tiles.tobytes())
    assert len(layouts) > 6  # resets pick different layouts


@pytest.mark.slow  # the PPO + MIMEx compile: ~50 s of CPU time
def test_fused_trainer_runs_and_reports_success():
    """A tiny PPO + MIMEx run on DoorKey-5x5 inside the fused train program, two seeds vmapped."""
    from mimex_jax.trainer import HParams, TrainConfig, make_train

    cfg = TrainConfig(
        env_id="minigrid:DoorKey-5x5", num_envs=4, rollout_len=8, epochs=1, minibatches=2,
        total_steps=4 * 8 * 2, episode_length=6, reward="mimex", actor_hidden=(16,),
        critic_hidden=(16,),
        mimex=(("embed_dim", 16), ("depth", 1), ("num_heads", 2), ("decoder_embed_dim", 8)))
    _, _, train, _ = make_train(cfg)
    hp = jax.tree.map(lambda x: jnp.stack([x, x]), HParams())
    _, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2), hp)
    assert metrics["episode_success"].shape == (2, 2)
    for k in ("episode_return", "episode_success", "episodes", "reward_int"):
        assert np.all(np.isfinite(np.asarray(metrics[k]))), k
    # 6-step episodes: every env finishes 16 / 6 -> 2 or 3 episodes per iteration of 8 steps
    assert np.all(np.asarray(metrics["episodes"]) >= 4)
