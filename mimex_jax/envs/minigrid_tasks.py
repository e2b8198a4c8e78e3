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

Navix also has a KeyCorridor, but in navix 0.7.4 it cannot be solved (its doors sit in wall
cells, and walking into or picking up its ball ends nothing), hence this port.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

__all__ = ["EXTRA_TASKS", "make_extra"]

# MiniGrid's KeyCorridor variants (room size S, rows R)
_KEY_CORRIDORS = ("S3R1", "S3R2", "S3R3", "S4R3", "S5R3", "S6R3")
EXTRA_TASKS = tuple(f"KeyCorridor{v}" for v in _KEY_CORRIDORS)


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


def make_extra(name: str):
    """``(env, params)`` of one of :data:`EXTRA_TASKS`, like ``xminigrid.make``."""
    match = re.fullmatch(r"KeyCorridorS(\d+)R(\d+)", name)
    if name not in EXTRA_TASKS or match is None:
        raise ValueError(f"unknown extra MiniGrid task {name!r}; allowed: {list(EXTRA_TASKS)}")
    env = _key_corridor_class()(int(match.group(1)), int(match.group(2)))
    return env, env.default_params()
