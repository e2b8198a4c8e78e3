"""Scale-out over devices and hosts with ``jax.sharding``: one program, sharded arrays.

A run uses a 2-D device mesh with axes ``("sweep", "data")``:

``sweep``
    The vmapped member axis of a sweep (settings x seeds). Every leaf of a sweep-stacked
    :class:`~mimex_jax.trainer.TrainState` and of its ``HParams`` has a leading member axis,
    placed with ``NamedSharding(mesh, P("sweep"))``: each device holds and runs whole
    members, and no collective crosses this axis.
``data``
    One run's environment batch. The env axis of the leaves that carry one (every leaf of
    ``env_state`` with a leading ``num_envs`` axis, the sequence ``window``, and DrQ-v2's
    replay ``buffer``, whose rings are per env) is split over ``data``; everything else
    (agent and reward-model parameters, optimiser states,
    observation statistics, projection, RNG key, iteration counter) is replicated. The step
    is the single-device code: XLA's SPMD partitioner splits it along the sharded axis,
    and because every loss is a mean over the whole batch, the gradients it
    computes are the global-batch gradients (partial sums per device, then an all-reduce it
    inserts itself). Sharding annotations change where values live, never what they are, so
    a run on 4 devices x 64 envs computes the 256-env single-device run (equal up to the
    order of floating-point reductions; random numbers are identical because JAX's
    threefry is partitionable).

Propagation alone would replicate the work (XLA resolves the rollout scan's carry and the
minibatch gather by gathering everything), so the trainer pins the env axis at a few
points with :func:`constrain_envs`: the rollout carry, the ``[T, N]`` rollout arrays on both
sides of their flattening to ``[T * N]`` (what the reward model and PPO read), the intrinsic
rewards reshaped back to ``[T, N]``, and each PPO minibatch. It is a no-op unless the step
is traced under a mesh whose ``data`` axis has more than one device
(:func:`under_mesh`), so single-device programs are unchanged. Besides the gradient
all-reduces, each iteration moves the rollout batch between devices twice (the time-major
flattening and the minibatch permutation of the global batch, both needed to reproduce the
single-device run exactly); XLA's cost analysis shows the FLOPs per device falling as
1/devices (``benchmarks/scaling.py``).

Initialisation runs once, as the plain single-device program on every process (member by
member for a sweep), and the state is then placed (:func:`put`); see
``mimex_jax.loop._placed_init`` for why. Metrics leave the step split like the members and
are gathered by the host (:func:`to_host`).

Sizes must divide: ``members % sweep == 0`` and ``num_envs % data == 0`` (also the PPO
minibatch size, ``num_envs * rollout_len / minibatches``, by ``data``). Nothing is padded;
:func:`plan_mesh` raises a ValueError naming both numbers before anything is compiled.
Global arrays are built with ``jax.make_array_from_callback``, so the same code runs on one
host or on many (after ``jax.distributed.initialize``, see :func:`initialize`), each host
holding and stepping only its own devices' shards.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("sweep", "data")
MESH_MODES = ("auto", "sweep", "data")


def constrain_envs(tree: Any, axis: int, size: int) -> Any:
    """Pin axis ``axis`` of every leaf whose length there is ``size`` to the ``data`` axis.

    Called by the trainer on its env-major values. It does nothing unless traced under a
    mesh (:func:`under_mesh`) whose ``data`` axis has more than one device; leaves of another
    length on ``axis`` (per-run scalars, shared keys) are left to propagation.
    """
    if data_axis_size() == 1:
        return tree
    spec = P(*([None] * axis), "data")

    def pin(x: Any) -> Any:
        if getattr(x, "ndim", 0) > axis and x.shape[axis] == size:
            return jax.lax.with_sharding_constraint(x, spec)
        return x

    return jax.tree.map(pin, tree)


def data_axis_size() -> int:
    """Devices on the ``data`` axis of the mesh being traced under (1 without one).

    For code that must not split the env batch into pieces that would each sit on one
    device (the MIMEx update's CPU microbatches, which would then run one device at a time).
    """
    mesh = jax.sharding.get_abstract_mesh()
    return 1 if mesh.empty or "data" not in mesh.axis_names else mesh.shape["data"]


# --------------------------------------------------------------------------------------
# Mesh layout


@dataclasses.dataclass(frozen=True)
class MeshPlan:
    """How many devices each mesh axis gets: ``sweep`` x ``data`` devices in all."""

    sweep: int = 1
    data: int = 1

    @property
    def devices(self) -> int:
        return self.sweep * self.data


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_mesh_option(mesh: Any) -> None:
    """Validate the shape of a ``run.mesh`` value (no device is looked at)."""
    if isinstance(mesh, str):
        if mesh not in MESH_MODES:
            raise ValueError(f"run.mesh={mesh!r} is invalid; allowed: one of "
                             f"{list(MESH_MODES)} or a mapping {{sweep: S, data: D}}")
        return
    if not isinstance(mesh, Mapping) or not mesh or any(k not in AXES for k in mesh):
        raise ValueError(f"run.mesh={mesh!r} is invalid; allowed: one of {list(MESH_MODES)} or "
                         f"a mapping with keys among {list(AXES)}, e.g. {{sweep: 2, data: 4}}")
    for k, v in mesh.items():
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise ValueError(f"run.mesh.{k}={v!r} is invalid; allowed: an integer >= 1")


def plan_mesh(mesh: str | Mapping[str, int] = "auto", devices: int | None = None, *,
              members: int = 1, num_envs: int, minibatch_size: int | None = None,
              available: int | None = None) -> MeshPlan:
    """Choose ``sweep`` x ``data`` for a run, or raise a ValueError naming the numbers.

    Args:
      mesh: ``"sweep"`` (every device on the member axis), ``"data"`` (every device on the
        env axis), ``{"sweep": S, "data": D}``, or ``"auto"``: ``sweep = gcd(members,
        devices)`` and the rest on ``data``. With ``devices`` left out, ``"auto"`` falls back
        to the largest layout that divides (a warning says how many devices stay idle); every
        other choice must divide exactly.
      devices: how many devices to use; None = all that JAX sees (``available``).
      members: sweep members (settings x seeds) the run trains.
      num_envs: environments per member; ``minibatch_size``: PPO minibatch (both split over
        ``data``).
      available: device count to plan for (default ``jax.device_count()``).
    """
    check_mesh_option(mesh)
    available = jax.device_count() if available is None else available
    if devices is not None and not (isinstance(devices, int) and not isinstance(devices, bool)
                                    and 1 <= devices <= available):
        raise ValueError(f"run.devices={devices!r} is invalid; allowed: null (all) or an "
                         f"integer in 1 .. {available} (the devices JAX sees)")
    if isinstance(mesh, Mapping):
        plan = MeshPlan(sweep=mesh.get("sweep", 1), data=mesh.get("data", 1))
        if devices is not None and plan.devices != devices:
            raise ValueError(f"run.mesh={dict(mesh)!r} uses {plan.devices} devices but "
                             f"run.devices={devices}; make them agree (or leave devices null)")
        if plan.devices > available:
            raise ValueError(f"run.mesh={dict(mesh)!r} needs {plan.devices} devices; JAX sees "
                             f"{available}")
    else:
        n = available if devices is None else devices
        if mesh == "sweep":
            plan = MeshPlan(sweep=n)
        elif mesh == "data":
            plan = MeshPlan(data=n)
        else:
            sweep = math.gcd(members, n)
            data = n // sweep
            if devices is None:  # lenient: the largest data axis that divides
                data = max(d for d in _divisors(data) if num_envs % d == 0 and (
                    minibatch_size is None or minibatch_size % d == 0))
                if sweep * data < n:
                    import warnings
                    warnings.warn(f"run.mesh=auto uses {sweep * data} of {n} devices: "
                                  f"{members} member(s) and num_envs={num_envs} do not "
                                  f"divide over more (set run.mesh or run.devices)",
                                  stacklevel=2)
            plan = MeshPlan(sweep=sweep, data=data)
    if members % plan.sweep:
        raise ValueError(f"the sweep axis of {plan.sweep} devices does not divide the "
                         f"{members} sweep members (settings x seeds); use a member count "
                         f"divisible by {plan.sweep} or another run.mesh")
    if num_envs % plan.data:
        raise ValueError(f"the data axis of {plan.data} devices does not divide "
                         f"train.num_envs={num_envs}; use a multiple of {plan.data} or another "
                         "run.mesh")
    if minibatch_size is not None and minibatch_size % plan.data:
        raise ValueError(f"the data axis of {plan.data} devices does not divide the PPO "
                         f"minibatch of {minibatch_size} samples (num_envs * rollout_len / "
                         "minibatches)")
    return plan


def make_mesh(plan: MeshPlan | None = None, devices: Sequence[Any] | None = None) -> Mesh:
    """A ``("sweep", "data")`` mesh over the first ``plan.devices`` devices.

    Axes are ``AxisType.Auto``: shardings are hints to XLA's partitioner, and the trainer's
    code stays the single-device code.
    """
    plan = plan or MeshPlan(data=jax.device_count())
    devs = list(jax.devices() if devices is None else devices)
    if plan.devices > len(devs):
        raise ValueError(f"a {plan.sweep} x {plan.data} mesh needs {plan.devices} devices; "
                         f"{len(devs)} are available")
    return jax.make_mesh((plan.sweep, plan.data), AXES, axis_types=(AxisType.Auto,) * 2,
                         devices=devs[:plan.devices])


def mesh_for_run(mesh: str | Mapping[str, int], devices: int | None, members: int,
                 cfg: Any) -> Mesh | None:
    """The run's mesh from ``run.mesh`` / ``run.devices``; None on a single device.

    Raises before anything is compiled when the layout does not divide the run. With
    several processes (``jax.distributed``) the mesh must span every device of every host.
    A pixel run (``cfg.observation == "pixels"``) with ``"auto"`` and no ``devices`` stays
    on one device, with a warning when more are visible: the batch renderer cannot be
    split over devices (:func:`mimex_jax.envs.pixels.check_layout`).
    """
    if (getattr(cfg, "observation", "state") == "pixels" and mesh == "auto"
            and devices is None and jax.process_count() == 1):
        if jax.device_count() > 1:
            import warnings
            warnings.warn(f"run.mesh=auto puts a pixel run on 1 of {jax.device_count()} "
                          "devices: the batch renderer cannot be split over devices",
                          stacklevel=2)
        return None
    plan = plan_mesh(mesh, devices, members=members, num_envs=cfg.num_envs,
                     minibatch_size=cfg.steps_per_iteration // cfg.minibatches)
    if jax.process_count() > 1 and plan.devices != jax.device_count():
        raise ValueError(f"with {jax.process_count()} processes the mesh must use all "
                         f"{jax.device_count()} devices, not {plan.devices} ({plan.sweep} x "
                         f"{plan.data}); adjust run.mesh / run.devices")
    if plan.devices == 1 and jax.process_count() == 1:
        return None
    return make_mesh(plan)


def under_mesh(fn: Callable, mesh: Mesh) -> Callable:
    """``fn`` traced with ``mesh`` as the context mesh (what :func:`constrain_envs` reads)."""

    def wrapped(*args: Any) -> Any:
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return fn(*args)

    return wrapped


# --------------------------------------------------------------------------------------
# Shardings of the trainer's pytrees


def state_specs(template: Any, num_envs: int, sweep: bool) -> Any:
    """A ``PartitionSpec`` per leaf of a :class:`~mimex_jax.trainer.TrainState`.

    ``template`` is ONE member's state (or its shapes). ``env_state``, ``window`` and
    ``buffer`` (DrQ-v2's replay rings) leaves with a leading ``num_envs`` axis get
    ``P("data")``: each device stores its own envs' replay slots; every other leaf ``P()``
    (replicated). With ``sweep`` every spec gets ``"sweep"`` in front (the member axis).
    """
    def spec(path: tuple, leaf: Any) -> P:
        top = getattr(path[0], "name", None)
        env_leaf = top in ("env_state", "window", "buffer") and getattr(leaf, "ndim", 0) >= 1 \
            and leaf.shape[0] == num_envs
        inner = ("data",) if env_leaf else ()
        return P(*((("sweep",) if sweep else ()) + inner))

    return jax.tree_util.tree_map_with_path(spec, template)


def member_sharding(mesh: Mesh, sweep: bool) -> NamedSharding:
    """Keys and hparams: split over ``sweep`` when stacked, else replicated."""
    return NamedSharding(mesh, P("sweep") if sweep else P())


def state_shardings(mesh: Mesh, template: Any, num_envs: int, sweep: bool) -> Any:
    """:func:`state_specs` as ``NamedSharding`` on ``mesh``."""
    return jax.tree.map(lambda s: NamedSharding(mesh, s),
                        state_specs(template, num_envs, sweep),
                        is_leaf=lambda x: isinstance(x, P))


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)


def put(tree: Any, sharding: Any) -> Any:
    """``tree`` as global arrays laid out by ``sharding`` (one sharding, or one per leaf).

    Every process passes the same host values and gets one global ``jax.Array`` per leaf,
    holding only its own devices' shards (``jax.make_array_from_callback``), so the same
    call works on one host and on many. Leaves already laid out that way are kept.
    """
    shardings = sharding if not isinstance(sharding, jax.sharding.Sharding) else \
        jax.tree.map(lambda _: sharding, tree)

    def one(x: Any, s: jax.sharding.Sharding) -> jax.Array:
        if isinstance(x, jax.Array) and x.sharding == s:
            return x
        if _is_key(x):
            impl = jax.random.key_impl(x)
            return jax.random.wrap_key_data(one(jax.random.key_data(x), s), impl=impl)
        if isinstance(x, jax.Array) and x.is_fully_addressable and s.is_fully_addressable:
            return jax.device_put(x, s)  # one host: device to device
        host = np.asarray(x)
        host = host.astype(jax.dtypes.canonicalize_dtype(host.dtype), copy=False)
        return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

    return jax.tree.map(one, tree, shardings)


def to_host(tree: Any) -> Any:
    """Every leaf as a host numpy array, gathered from all processes when it spans several.

    PRNG keys come back as uncommitted key arrays (their data copied through the host).

    One batched ``jax.device_get`` when this process holds every shard (one host);
    otherwise ``process_allgather`` per leaf (every process must call it).
    """
    from jax.experimental import multihost_utils

    leaves = jax.tree.leaves(tree)
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in leaves):
        data = jax.device_get(jax.tree.map(
            lambda x: jax.random.key_data(x) if _is_key(x) else x, tree))
        return jax.tree.map(  # keys: their data on the host, re-wrapped uncommitted
            lambda h, x: jax.random.wrap_key_data(h, impl=jax.random.key_impl(x))
            if _is_key(x) else h, data, tree)

    def one(x: Any) -> Any:
        if _is_key(x):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)),
                                            impl=jax.random.key_impl(x))
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


# --------------------------------------------------------------------------------------
# Several hosts


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """``jax.distributed.initialize`` with flags, else environment variables, else detection.

    ``coordinator`` falls back to ``JAX_COORDINATOR_ADDRESS`` (read by JAX itself),
    ``num_processes`` / ``process_id`` to ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``;
    whatever is still unset is left to JAX's cluster detection (SLURM, Open MPI, Cloud TPU
    pods, Kubernetes, ...). Must run before any other JAX call touches a device.
    """
    def env_int(name: str) -> int | None:
        v = os.environ.get(name)
        if v is None or v == "":
            return None
        try:
            return int(v)
        except ValueError:
            raise ValueError(f"{name}={v!r} is invalid; allowed: an integer") from None

    num_processes = num_processes if num_processes is not None else env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else env_int("JAX_PROCESS_ID")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"--num-processes={num_processes} is invalid; allowed: >= 1")
    if process_id is not None and num_processes is not None and not \
            0 <= process_id < num_processes:
        raise ValueError(f"--process-id={process_id} is invalid; allowed: 0 .. "
                         f"{num_processes - 1} (--num-processes={num_processes})")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


def is_main_process() -> bool:
    """True on process 0 (the one that writes logs and run files)."""
    return jax.process_index() == 0
