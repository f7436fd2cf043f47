"""Randomized variants of a task: the same observation and reward on a robot with other physics.

Variant `<task>~v<seed>` (e.g. 'cartpole_swingup~v17') simulates the task's MuJoCo
model with these quantities scaled, each by its own factor drawn uniformly from
its range with a generator seeded by (task name, seed):

- the mass of every body (kg; every geom of the body, through its mass or its
  density, and an explicit inertial): `MASS_RANGE`;
- the length of every link the task names in `LINKS` (m; the link's geometry,
  sites and child bodies move along the link's axis; radii stay): `LENGTH_RANGE`;
- the damping of every joint (N·m·s/rad for hinges, N·s/m for slides): `DAMPING_RANGE`;
- the gear of every actuator (N·m or N per unit of control): `GEAR_RANGE`.

Factors are rounded to `FACTOR_DECIMALS` decimals, so that the MJCF text (which
MuJoCo writes with 6 significant digits) holds a scaled value of a short nominal
one exactly; the task and its environment load the same text. Seed 0 is the unmodified model (every factor 1): its
episodes are the base task's. The observation and reward are the base task's
functions; those that read the model's geometry (acrobot's tip, reacher's
finger) read the variant's, so they still equal the variant environment's.
`Task.describe()` records the variant under 'variant': ranges, factors and the
resulting values of the compiled model.

`FAMILY_SPLITS` names, for every task, the variant seeds a generalist model
trains on and the held-out ones it is evaluated on.
"""

from __future__ import annotations

import functools
import zlib
from typing import ClassVar

import mujoco
import numpy as np

from tdm_control.config import ConfigError
from tdm_control.tasks import TASKS
from tdm_control.tasks.base import Task, environment_with_physics

SEPARATOR = "~v"
"""Between a task name and a variant seed: 'cartpole_swingup~v17'."""

MASS_RANGE = (0.5, 1.5)
"""Factor on each body's mass (kg)."""
LENGTH_RANGE = (0.8, 1.2)
"""Factor on each link's length (m)."""
DAMPING_RANGE = (0.5, 2.0)
"""Factor on each joint's damping (N·m·s/rad or N·s/m)."""
GEAR_RANGE = (0.75, 1.25)
"""Factor on each actuator's gear (N·m or N per unit of control)."""
RANGES = {"mass": MASS_RANGE, "length": LENGTH_RANGE, "damping": DAMPING_RANGE, "gear": GEAR_RANGE}
"""Every scaled quantity and its factor range, in the order the factors are drawn."""
FACTOR_DECIMALS = 3
"""Decimals a factor is rounded to."""

LINKS: dict[str, tuple[tuple[str, int], ...]] = {
    "cartpole_swingup": (("pole_1", 2),),
    "cartpole_two_poles": (("pole_1", 2), ("pole_2", 2)),
    "cartpole_three_poles": (("pole_1", 2), ("pole_2", 2), ("pole_3", 2)),
    "pendulum_swingup": (("pole", 2),),
    "acrobot_swingup": (("upper_arm", 2), ("lower_arm", 2)),
    "reacher_easy": (("arm", 0), ("hand", 0)),
}
"""Per task, its links: (body, axis along the link in the body's frame: 0 x, 1 y, 2 z). Tasks not
listed (walker, cheetah: their limbs are posed along tilted axes; point mass: no links) keep their
lengths."""

TRAIN_SEEDS = tuple(range(0, 64))
"""Variant seeds of a family's training variants; 0 is the unmodified task."""
HELDOUT_SEEDS = tuple(range(10_000, 10_016))
"""Variant seeds held out of training, to measure generalisation to unseen physics; far above the
training seeds, so a family can grow its training set without meeting them."""
FAMILY_SPLITS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    name: (TRAIN_SEEDS, HELDOUT_SEEDS) for name in TASKS}
"""Per task: (training variant seeds, held-out variant seeds), disjoint."""


def family(base_name: str, split: str) -> list[str]:
    """Task names of a family's 'train' or 'heldout' variants, e.g. ['cartpole_swingup~v0', ...]."""
    train, heldout = FAMILY_SPLITS[base_name]
    seeds = {"train": train, "heldout": heldout}.get(split)
    if seeds is None:
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return [variant_name(base_name, s) for s in seeds]


def heldout(name: str) -> bool:
    """Whether task name `name` ('<task>~v<seed>') is one of its family's held-out variants."""
    base, seed = parse_variant_name(name)
    return seed in FAMILY_SPLITS[base][1]


def variant_name(base_name: str, seed: int) -> str:
    """'cartpole_swingup', 17 -> 'cartpole_swingup~v17'."""
    return f"{base_name}{SEPARATOR}{seed}"


def parse_variant_name(name: str) -> tuple[str, int]:
    """'cartpole_swingup~v17' -> ('cartpole_swingup', 17); a ConfigError for anything else."""
    base, _, seed = name.rpartition(SEPARATOR)
    if base not in TASKS or not (seed.isascii() and seed.isdigit()) or str(int(seed)) != seed:
        raise ConfigError(f"unknown task {name!r}: a variant is '<task>{SEPARATOR}<seed>' with a seed >= 0 "
                          f"written without leading zeros, and a task among: {', '.join(sorted(TASKS))}")
    return base, int(seed)


def make_variant(base_name: str, seed: int) -> Task:
    """Variant `seed` of task `base_name` (see the module docstring)."""
    return variant_class(base_name, seed)()


class Variant(Task):
    """Mixed in before a task class: its model is the variant's, its environment simulates that model."""

    base_name: ClassVar[str]
    """Registry name of the task this varies."""
    variant_seed: ClassVar[int]
    """The seed the factors were drawn with."""
    variant_factors: ClassVar[dict[str, dict[str, float]]]
    """Per quantity ('mass', 'length', 'damping', 'gear'), element name -> factor."""
    link_lengths: ClassVar[dict[str, float]]
    """Link body -> its length (m) in the variant (`link_length`)."""
    _xml: ClassVar[str]
    _assets: ClassVar[dict[str, bytes]]

    @classmethod
    def model_xml(cls):
        return cls._xml, cls._assets

    def make_environment(self, seed: int):
        """The base task's environment for `seed` (its task object, time limit and control
        timestep), simulating this variant's model."""
        env = super().make_environment(seed)
        physics = type(env.physics).from_xml_string(*self.model_xml())
        return environment_with_physics(env, physics)

    @property
    def variant(self) -> dict:
        """Base task, seed, factor ranges, factors, and the resulting values of the compiled model:
        body mass (kg), link length (m), joint damping, actuator gear (its first entry)."""
        model = self.model
        values = {
            "mass": {model.body(i).name: float(model.body_mass[i]) for i in range(1, model.nbody)},
            "length": dict(self.link_lengths),
            "damping": {model.joint(i).name: float(model.dof_damping[model.jnt_dofadr[i]])
                        for i in range(model.njnt)},
            "gear": {model.actuator(i).name: float(model.actuator_gear[i, 0]) for i in range(model.nu)},
        }
        return {"base_task": self.base_name, "seed": self.variant_seed,
                "ranges": {k: list(v) for k, v in RANGES.items()},
                "factors": {quantity: dict(f) for quantity, f in self.variant_factors.items()},
                "values": values}

    def describe(self) -> dict:
        return {**super().describe(), "variant": self.variant}

    def __reduce__(self):
        # The class is made at run time: a pickle names the variant, and unpickling makes it again.
        return make_variant, (self.base_name, self.variant_seed)


@functools.cache
def variant_class(base_name: str, seed: int) -> type[Task]:
    """The Task class of variant `seed` of `base_name`; one class per variant."""
    if base_name not in TASKS:
        raise ConfigError(f"unknown task {base_name!r}; choose one of: {', '.join(sorted(TASKS))}")
    if seed < 0:
        raise ConfigError(f"variant seed must be >= 0, got {seed}")
    base = TASKS[base_name]
    xml, assets = base.model_xml()
    spec = mujoco.MjSpec.from_string(xml, assets)
    factors = draw_factors(base_name, seed, spec)
    if seed != 0:  # seed 0 keeps the base task's own text
        scale_spec(spec, factors, base_name)
        xml = spec.to_xml()
    attributes = {
        "name": variant_name(base_name, seed), "base_name": base_name, "variant_seed": seed,
        "variant_factors": factors, "_xml": xml, "_assets": assets, "__module__": __name__,
        "link_lengths": {body: link_length(spec, body, axis) for body, axis in LINKS.get(base_name, ())},
        "__doc__": f"{base_name} with its physics scaled by the factors of variant {seed}: {factors}",
    }
    return type(f"{base.__name__}Variant{seed}", (Variant, base), attributes)


def draw_factors(base_name: str, seed: int, spec: mujoco.MjSpec) -> dict[str, dict[str, float]]:
    """Per quantity ('mass', 'length', 'damping', 'gear'), element name -> factor. All 1 for seed 0."""
    names = {
        "mass": [b.name for b in spec.bodies if b.name != "world"],
        "length": [body for body, _ in LINKS.get(base_name, ())],
        "damping": [j.name for j in spec.joints],
        "gear": [a.name for a in spec.actuators],
    }
    rng = np.random.default_rng([zlib.crc32(base_name.encode()), seed])
    factors = {}
    for quantity, (low, high) in RANGES.items():
        drawn = np.round(rng.uniform(low, high, len(names[quantity])), FACTOR_DECIMALS)
        factors[quantity] = {n: (1.0 if seed == 0 else float(f)) for n, f in zip(names[quantity], drawn)}
    return factors


def scale_spec(spec: mujoco.MjSpec, factors: dict[str, dict[str, float]], base_name: str) -> None:
    """Scales masses, link lengths, damping and gear of task `base_name`'s `spec` in place by `factors`."""
    links = LINKS.get(base_name, ())
    normalise = 1.0
    if spec.compiler.settotalmass > 0:
        # The compiler rescales every mass to this total (cheetah): fold that rescaling into the geoms
        # instead, so each body's mass is its nominal mass times its own factor.
        total, spec.compiler.settotalmass = spec.compiler.settotalmass, -1.0
        normalise = total / float(spec.compile().body_mass.sum())
    for name, f in factors["mass"].items():
        body = spec.body(name)
        for geom in body.geoms:
            if np.isnan(geom.mass):
                geom.density = geom.density * f * normalise
            else:
                geom.mass = geom.mass * f * normalise
        if body.explicitinertial:
            body.mass = body.mass * f * normalise
            body.inertia = body.inertia * f * normalise
            body.fullinertia = body.fullinertia * f * normalise
    for name, axis in links:
        f = factors["length"][name]
        body = spec.body(name)
        for geom in body.geoms:
            if np.isnan(geom.fromto[0]):
                geom.pos = _scaled(geom.pos, axis, f)
            else:
                geom.fromto = np.concatenate([_scaled(geom.fromto[:3], axis, f), _scaled(geom.fromto[3:], axis, f)])
        for element in (*body.sites, *body.bodies, *body.joints):
            element.pos = _scaled(element.pos, axis, f)
    for name, f in factors["damping"].items():
        spec.joint(name).damping = spec.joint(name).damping * f
    for name, f in factors["gear"].items():
        spec.actuator(name).gear = spec.actuator(name).gear * f
    if base_name == "acrobot_swingup":  # the target stays where the upright tip reaches, above the shoulder
        spec.site("target").pos = spec.body("upper_arm").pos + spec.body("lower_arm").pos + spec.site("tip").pos


def _scaled(vector: np.ndarray, axis: int, factor: float) -> np.ndarray:
    out = np.array(vector, dtype=np.float64)
    out[axis] *= factor
    return out


def link_length(spec: mujoco.MjSpec, body_name: str, axis: int) -> float:
    """How far (m) a link reaches along its axis from its joint: its farthest geom end, site or child body."""
    body = spec.body(body_name)
    reach = [abs(e.pos[axis]) for e in (*body.sites, *body.bodies)]
    for geom in body.geoms:
        if np.isnan(geom.fromto[0]):
            reach.append(abs(geom.pos[axis]))
        else:
            reach += [abs(geom.fromto[axis]), abs(geom.fromto[3 + axis])]
    return float(max(reach))
