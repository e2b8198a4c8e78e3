"""MiniGrid tasks that xminigrid does not ship, written on xminigrid's own core (grid tiles,
actions, goals), so they step, observe and reward exactly like its MiniGrid ports.

- ``KeyCorridorS{S}R{R}`` (MiniGrid's KeyCorridor, S3R1 ... S6R3): three columns of
  ``S x S`` rooms (sharing walls), ``R`` rows. The middle column is one open corridor; every
  side room opens onto it by one closed door. The ball lies in one right-hand room, behind
  the only locked door; the key of that door's colour lies in a left-hand room. The agent
  starts in the corridor (its middle room) and must pick the ball up (which needs empty
  hands: carry the key through the door, put it down, then pick up the ball). Episodes last
  MiniGrid's ``30 * S**2`` steps; reward ``1 - 0.9 * steps / max_steps`` on success.

  One difference from MiniGrid, whose ``connect_all`` places the side rooms' doors by a
  random search and may join two side rooms to each other: here each side room has exactly
  one door, to the corridor, at a random place along the shared wall. Reachability and what
  must be done are the same.

- ``MultiRoom-N{N}-S{S}`` (MiniGrid's MultiRoom: N2-S4, N4-S5, N6-S10, the last also as
  ``MultiRoom-N6``): a chain of ``N`` rooms (each 4 to ``S`` cells a side, walls included) on
  a 25 x 25 grid, each joined to the next by a closed door (a colour unlike the previous
  door's) in their shared wall; the agent starts in the first room, the goal square is in
  the last. Episodes last MiniGrid's ``20 * N`` steps. Layouts are drawn as MiniGrid draws
  them: each next room hangs off a random wall of the previous one (not the one it was
  entered by) at a random door position, up to 8 placements per room, and a layout whose
  room finds no placement inside the grid and clear of earlier rooms is drawn again
  (:func:`multiroom_layout`, :func:`multiroom_bank`).
  One difference: that rejection loop is too slow to run inside every auto-reset of a
  batch (every env waits for the slowest draw: 4,700 env steps/s for N2-S4 at 256 envs on
  the 2-core CPU), so the env draws a bank of :data:`MULTIROOM_BANK` layouts once, when it
  is built (from a fixed key, the same for every seed: a fixed level set, like a
  procedurally generated benchmark's), and each reset picks one at random; door colours,
  the agent's start and direction and the goal square are drawn afresh every reset.

Navix also has a KeyCorridor, but in navix 0.7.4 it cannot be solved (its doors sit in wall
cells, and walking into or picking up its ball ends nothing), hence this port. Neither
xminigrid nor Navix has MultiRoom.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["EXTRA_TASKS", "make_extra"]

# MiniGrid's KeyCorridor variants (room size S, rows R)
_KEY_CORRIDORS = ("S3R1", "S3R2", "S3R3", "S4R3", "S5R3", "S6R3")
# MiniGrid's MultiRoom variants: (rooms N, largest room side S)
_MULTI_ROOMS = {"MultiRoom-N2-S4": (2, 4), "MultiRoom-N4-S5": (4, 5),
                "MultiRoom-N6-S10": (6, 10), "MultiRoom-N6": (6, 10)}
EXTRA_TASKS = tuple(f"KeyCorridor{v}" for v in _KEY_CORRIDORS) + tuple(_MULTI_ROOMS)
_MULTIROOM_GRID = 25   # MiniGrid's grid side for every MultiRoom variant
_MIN_ROOM = 4          # smallest room side, walls included
MULTIROOM_BANK = 16384  # MultiRoom layouts drawn when the env is built


def _key_corridor_class():
    """The KeyCorridor env class (built lazily: xminigrid is an optional dependency)."""
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles
    from xminigrid.core.goals import AgentHoldGoal
    from xminigrid.core.grid import (
        empty_world,
        horizontal_line,
        sample_coordinates,
        sample_direction,
        vertical_line,
    )
    from xminigrid.core.rules import EmptyRule
    from xminigrid.environment import Environment, EnvParams
    from xminigrid.types import AgentState, EnvCarry, State

    colours = jnp.array((Colors.RED, Colors.GREEN, Colors.BLUE, Colors.PURPLE, Colors.YELLOW,
                         Colors.GREY))
    wall = TILES_REGISTRY[Tiles.WALL, Colors.GREY]
    floor = TILES_REGISTRY[Tiles.FLOOR, Colors.BLACK]
    rule = EmptyRule().encode()[None, ...]

    class KeyCorridor(Environment[EnvParams, EnvCarry]):
        """MiniGrid's KeyCorridor on xminigrid's core (see the module docstring)."""

        def __init__(self, room_size: int, num_rows: int):
            self.room_size, self.num_rows = room_size, num_rows

        def default_params(self, **kwargs) -> EnvParams:
            s = self.room_size - 1
            params = EnvParams(height=s * self.num_rows + 1, width=3 * s + 1).replace(**kwargs)
            if params.max_steps is None:
                params = params.replace(max_steps=30 * self.room_size ** 2)
            return params

        def _room_mask(self, grid: jax.Array, col: int | jax.Array, row: jax.Array
                       ) -> jax.Array:
            """Interior cells of room (``col``, ``row``)."""
            s = self.room_size - 1
            ys, xs = jnp.mgrid[: grid.shape[0], : grid.shape[1]]
            return ((xs > col * s) & (xs < (col + 1) * s)
                    & (ys > row * s) & (ys < (row + 1) * s))

        def _generate_problem(self, params: EnvParams, key: jax.Array) -> State[EnvCarry]:
            s, rows = self.room_size - 1, self.num_rows
            keys = jax.random.split(key, 9)
            grid = empty_world(params.height, params.width)
            for c in range(4):
                grid = vertical_line(grid, c * s, 0, params.height, wall)
            for r in range(rows + 1):
                grid = horizontal_line(grid, 0, r * s, params.width, wall)
            for r in range(1, rows):  # the middle column is one corridor
                grid = horizontal_line(grid, s + 1, r * s, s - 1, floor)

            ball_row = jax.random.randint(keys[0], (), 0, rows)
            key_row = jax.random.randint(keys[1], (), 0, rows)
            lock_colour, ball_colour = jax.random.choice(keys[2], colours, (2,))
            door_colours = jax.random.choice(keys[3], colours, (2, rows))
            offsets = jax.random.randint(keys[4], (2, rows), 1, s)
            locked = TILES_REGISTRY[Tiles.DOOR_LOCKED, lock_colour]
            for r in range(rows):
                left = TILES_REGISTRY[Tiles.DOOR_CLOSED, door_colours[0, r]]
                right = jnp.where(r == ball_row, locked,
                                  TILES_REGISTRY[Tiles.DOOR_CLOSED, door_colours[1, r]])
                grid = grid.at[r * s + offsets[0, r], s].set(left)
                grid = grid.at[r * s + offsets[1, r], 2 * s].set(right)

            ball_yx = sample_coordinates(keys[5], grid, 1, self._room_mask(grid, 2, ball_row))[0]
            key_yx = sample_coordinates(keys[6], grid, 1, self._room_mask(grid, 0, key_row))[0]
            ball = TILES_REGISTRY[Tiles.BALL, ball_colour]
            grid = grid.at[ball_yx[0], ball_yx[1]].set(ball)
            grid = grid.at[key_yx[0], key_yx[1]].set(TILES_REGISTRY[Tiles.KEY, lock_colour])
            start = self._room_mask(grid, 1, jnp.asarray(rows // 2))
            agent_yx = sample_coordinates(keys[7], grid, 1, start)[0]
            agent = AgentState(position=agent_yx, direction=sample_direction(keys[8]))
            return State(key=key, step_num=jnp.asarray(0), grid=grid, agent=agent,
                         goal_encoding=AgentHoldGoal(tile=ball).encode(),
                         rule_encoding=rule, carry=EnvCarry())

    return KeyCorridor


def _rect(ys: jax.Array, xs: jax.Array, room: jax.Array, shrink: int = 0) -> jax.Array:
    """Mask of room ``(x, y, w, h)`` (walls included), ``shrink`` cells in from each side."""
    x, y, w, h = room[0], room[1], room[2], room[3]
    return ((xs >= x + shrink) & (xs < x + w - shrink)
            & (ys >= y + shrink) & (ys < y + h - shrink))


def _next_room(key: jax.Array, prev: jax.Array, entry: jax.Array, max_size: int
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A room hung off a random wall of ``prev`` (``(x, y, w, h)``, entered by wall
    ``entry``; walls 0 right, 1 down, 2 left, 3 up): ``(room, door (y, x), its entry wall)``."""
    k_side, k_door, k_size, k_off = jax.random.split(key, 4)
    side = (entry + jax.random.randint(k_side, (), 1, 4)) % 4   # any wall but the entry
    w, h = jax.random.randint(k_size, (2,), _MIN_ROOM, max_size + 1)
    px, py, pw, ph = prev[0], prev[1], prev[2], prev[3]
    u = jax.random.uniform(k_door, (2,))
    u2 = jax.random.uniform(k_off, ())
    along_h = py + 1 + (u[0] * (ph - 2)).astype(jnp.int32)    # a door row on a side wall
    along_w = px + 1 + (u[1] * (pw - 2)).astype(jnp.int32)    # a door column on top/bottom
    off_h = 1 + (u2 * (h - 2)).astype(jnp.int32)              # the door's row in the new room
    off_w = 1 + (u2 * (w - 2)).astype(jnp.int32)
    door_y = jnp.select([side == 0, side == 1, side == 2], [along_h, py + ph - 1, along_h],
                        py)
    door_x = jnp.select([side == 0, side == 1, side == 2], [px + pw - 1, along_w, px],
                        along_w)
    nx = jnp.select([side == 0, side == 1, side == 2], [door_x, door_x - off_w,
                                                        door_x - w + 1], door_x - off_w)
    ny = jnp.select([side == 0, side == 1, side == 2], [door_y - off_h, door_y,
                                                        door_y - off_h], door_y - h + 1)
    return jnp.stack([nx, ny, w, h]), jnp.stack([door_y, door_x]), (side + 2) % 4


def _overlap(a: jax.Array, b: jax.Array) -> jax.Array:
    """Whether rectangles ``(x, y, w, h)`` share a cell (an empty one shares none)."""
    return ((a[0] < b[0] + b[2]) & (b[0] < a[0] + a[2]) & (a[1] < b[1] + b[3])
            & (b[1] < a[1] + a[3]) & (a[2] > 0) & (a[3] > 0) & (b[2] > 0) & (b[3] > 0))


def _split_entry(room: jax.Array, entry: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``room`` without its ``entry`` wall (0 right, 1 down, 2 left, 3 up), and that wall."""
    x, y, w, h = room[0], room[1], room[2], room[3]
    body = jnp.select([entry == 0, entry == 1, entry == 2],
                      [jnp.stack([x, y, w - 1, h]), jnp.stack([x, y, w, h - 1]),
                       jnp.stack([x + 1, y, w - 1, h])], jnp.stack([x, y + 1, w, h - 1]))
    wall = jnp.select([entry == 0, entry == 1, entry == 2],
                      [jnp.stack([x + w - 1, y, 1, h]), jnp.stack([x, y + h - 1, w, 1]),
                       jnp.stack([x, y, 1, h])], jnp.stack([x, y, w, 1]))
    return body, wall


_ROOM_TRIES = 8  # candidate placements per room, as MiniGrid's generator tries


def draw_multiroom(key: jax.Array, num_rooms: int, max_size: int,
                   side: int = _MULTIROOM_GRID) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One MultiRoom layout draw: rooms ``[N, 4]`` as ``(x, y, w, h)`` (walls included),
    doors ``[N - 1, 2]`` as ``(y, x)`` (door ``i`` joins rooms ``i`` and ``i + 1``), and
    whether it is valid. As in MiniGrid, each next room gets up to :data:`_ROOM_TRIES`
    random placements; the first that stays inside the ``side x side`` grid and overlaps
    no earlier room (beyond the wall it shares with its predecessor) is kept, and the draw
    is invalid when none does. Rectangle arithmetic, no grid masks."""
    k_first, k_pos, *ks = jax.random.split(key, num_rooms + 1)
    w, h = jax.random.randint(k_first, (2,), _MIN_ROOM, max_size + 1)
    u = jax.random.uniform(k_pos, (2,))
    first = jnp.stack([(u[0] * (side - w + 1)).astype(jnp.int32),
                       (u[1] * (side - h + 1)).astype(jnp.int32), w, h])
    rooms, doors = [first], []
    ok, entry = jnp.asarray(True), jnp.asarray(-1)
    for i in range(num_rooms - 1):
        tries = jax.random.split(ks[i], _ROOM_TRIES)
        cand, door, cand_entry = jax.vmap(
            lambda k, prev=rooms[-1], e=entry: _next_room(k, prev, e % 4, max_size))(tries)

        def fits(room: jax.Array, e: jax.Array, placed: tuple = tuple(rooms)) -> jax.Array:
            good = ((room[0] >= 0) & (room[1] >= 0) & (room[0] + room[2] <= side)
                    & (room[1] + room[3] <= side))
            body, wall = _split_entry(room, e)
            for old in placed:
                good &= ~_overlap(body, old) & ~_overlap(wall, old + jnp.array([1, 1, -2, -2]))
            return good

        good = jax.vmap(fits)(cand, cand_entry)
        pick = jnp.argmax(good)   # the first placement that fits
        ok &= good[pick]
        rooms.append(cand[pick])
        doors.append(door[pick])
        entry = cand_entry[pick]
    return jnp.stack(rooms), jnp.stack(doors), ok


def multiroom_layout(key: jax.Array, num_rooms: int, max_size: int,
                     side: int = _MULTIROOM_GRID) -> tuple[jax.Array, jax.Array]:
    """A valid MultiRoom layout (rooms, doors as in :func:`draw_multiroom`): draws again
    until one is valid, as MiniGrid does (a ``lax.while_loop``)."""

    def redraw(carry):
        k, _, _, _ = carry
        k, sub = jax.random.split(k)
        return (k, *draw_multiroom(sub, num_rooms, max_size, side))

    k, sub = jax.random.split(key)
    first = (k, *draw_multiroom(sub, num_rooms, max_size, side))
    _, rooms, doors, _ = jax.lax.while_loop(lambda c: ~c[3], redraw, first)
    return rooms, doors


def multiroom_bank(key: jax.Array, num_rooms: int, max_size: int, size: int,
                   chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``size`` valid layouts (host arrays ``[size, N, 4]``, ``[size, N - 1, 2]``): chunks
    of ``chunk`` draws, the valid ones kept in draw order (no lane waits on another)."""
    draw = jax.jit(jax.vmap(lambda k: draw_multiroom(k, num_rooms, max_size)))
    rooms, doors, got = [], [], 0
    while got < size:
        key, sub = jax.random.split(key)
        r, d, ok = (np.asarray(x) for x in draw(jax.random.split(sub, chunk)))
        rooms.append(r[ok])
        doors.append(d[ok])
        got += int(ok.sum())
    return np.concatenate(rooms)[:size], np.concatenate(doors)[:size]


@functools.lru_cache(maxsize=8)
def _bank(num_rooms: int, max_size: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The layout bank of one MultiRoom variant (from a fixed key; built once per process)."""
    return multiroom_bank(jax.random.key(20230514), num_rooms, max_size, size)


def _multiroom_class():
    """The MultiRoom env class (built lazily: xminigrid is an optional dependency)."""
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles
    from xminigrid.core.goals import AgentOnTileGoal
    from xminigrid.core.grid import sample_coordinates, sample_direction
    from xminigrid.core.rules import EmptyRule
    from xminigrid.environment import Environment, EnvParams
    from xminigrid.types import AgentState, EnvCarry, State

    colours = jnp.array((Colors.RED, Colors.GREEN, Colors.BLUE, Colors.PURPLE, Colors.YELLOW,
                         Colors.GREY))
    wall = TILES_REGISTRY[Tiles.WALL, Colors.GREY]
    floor = TILES_REGISTRY[Tiles.FLOOR, Colors.BLACK]
    goal = TILES_REGISTRY[Tiles.GOAL, Colors.GREEN]
    rule = EmptyRule().encode()[None, ...]

    class MultiRoom(Environment[EnvParams, EnvCarry]):
        """MiniGrid's MultiRoom on xminigrid's core (see the module docstring)."""

        def __init__(self, num_rooms: int, max_size: int, bank: int = MULTIROOM_BANK):
            self.num_rooms, self.max_size = num_rooms, max_size
            # host arrays: constants of every program that resets this env
            self.rooms, self.doors = _bank(num_rooms, max_size, bank)

        def default_params(self, **kwargs) -> EnvParams:
            params = EnvParams(height=_MULTIROOM_GRID, width=_MULTIROOM_GRID).replace(**kwargs)
            if params.max_steps is None:
                params = params.replace(max_steps=20 * self.num_rooms)
            return params

        def _generate_problem(self, params: EnvParams, key: jax.Array) -> State[EnvCarry]:
            k_layout, k_colour, k_agent, k_goal, k_dir = jax.random.split(key, 5)
            pick = jax.random.randint(k_layout, (), 0, len(self.rooms))
            rooms, doors = jnp.asarray(self.rooms)[pick], jnp.asarray(self.doors)[pick]
            ys, xs = jnp.mgrid[: params.height, : params.width]
            inner = [_rect(ys, xs, rooms[i], 1) for i in range(self.num_rooms)]
            grid = jnp.where(functools.reduce(jnp.logical_or, inner)[..., None], floor, wall)
            # door colours: each unlike the one before
            steps = jax.random.randint(k_colour, (self.num_rooms - 1,), 1, len(colours))
            idx = jnp.cumsum(steps) % len(colours)
            for i in range(self.num_rooms - 1):
                tile = TILES_REGISTRY[Tiles.DOOR_CLOSED, colours[idx[i]]]
                grid = grid.at[doors[i, 0], doors[i, 1]].set(tile)
            goal_yx = sample_coordinates(k_goal, grid, 1, inner[-1])[0]
            grid = grid.at[goal_yx[0], goal_yx[1]].set(goal)
            agent_yx = sample_coordinates(k_agent, grid, 1, inner[0])[0]
            agent = AgentState(position=agent_yx, direction=sample_direction(k_dir))
            return State(key=key, step_num=jnp.asarray(0), grid=grid, agent=agent,
                         goal_encoding=AgentOnTileGoal(tile=goal).encode(),
                         rule_encoding=rule, carry=EnvCarry())

    return MultiRoom


def make_extra(name: str):
    """``(env, params)`` of one of :data:`EXTRA_TASKS`, like ``xminigrid.make``."""
    if name in _MULTI_ROOMS:
        env = _multiroom_class()(*_MULTI_ROOMS[name])
        return env, env.default_params()
    match = re.fullmatch(r"KeyCorridorS(\d+)R(\d+)", name)
    if name not in EXTRA_TASKS or match is None:
        raise ValueError(f"unknown extra MiniGrid task {name!r}; allowed: {list(EXTRA_TASKS)}")
    env = _key_corridor_class()(int(match.group(1)), int(match.group(2)))
    return env, env.default_params()
