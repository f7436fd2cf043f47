"""Does a learned model keep its promises? An audit of the plans of one closed-loop episode.

The episode is the one `tdm-control eval` (episode 0) or a grid run with the
same seed plays: same start, same planner noise. At every planning step the
audit also

* replays the chosen plan in a copy of the simulator's state: the *true* return
  of what the model promised (its *predicted* return);
* lets a reference planner on the ground-truth model plan from the same state
  and horizon (warm start, K = `reference_samples`), and asks the learned model
  what it predicts for that plan.

Reading it: a chosen plan whose predicted return is far above its true return
is the planner exploiting an optimistic error; a reference plan that is truly
better but predicted worse than the chosen one is a ranking the model gets
wrong. When both happen where the walker falls, more search cannot help: the
model must get better.

Returns are sums over the horizon of the task reward on arriving at each model
step (the planner's observation objective; at most N for rewards in [0, 1]).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
from tqdm import tqdm

from tdm_control.controller import build_controller, episode_rng
from tdm_control.dynamics.mujoco_model import MujocoDynamics
from tdm_control.evaluation.episodes import EvalConfig, reward_trace
from tdm_control.evaluation.plots import pyplot, save
from tdm_control.evaluation.prediction_error import true_future
from tdm_control.planning import ObservationReward, make_planner
from tdm_control.tasks import Task, make_task
from tdm_control.tasks.simulator import Simulator


def replay_return(simulator: Simulator, task: Task, plan: np.ndarray, action_repeat: int) -> float:
    """True return of `plan` (N, m) from the simulator's current state, which is left unchanged."""
    actions = np.clip(plan, -1.0, 1.0)
    return float(task.reward(true_future(simulator, actions, action_repeat), actions).sum())


def audit_episode(config: EvalConfig, steps: int, reference_samples: int = 64,
                  show_progress: bool = True) -> dict[str, Any]:
    """Runs episode 0 of `config` for `steps` control steps and audits every plan.

    Returns a JSON-serialisable dict: `rewards` (steps,), the reward of every
    control step, and `plans`, one row per planning step with the control step
    it was made at and the chosen and reference plans' predicted and true returns.
    """
    task = make_task(config.task)
    controller = build_controller(config, task, 0)
    planner, repeat = controller.planner, controller.action_repeat
    horizon = int(planner.config.horizon)
    reference = make_planner("warm_start", MujocoDynamics(task, nthread=1, action_repeat=repeat),
                             ObservationReward(task.reward), task.action_size, episode_rng(config.seed, 1),
                             {"samples": reference_samples, "horizon": horizon})
    simulator = Simulator(task, seed=config.seed)
    simulator.reset()
    controller.reset()
    reference.reset()
    rewards, plans = [], []
    try:
        for t in tqdm(range(steps), disable=not show_progress, unit="step", desc=f"audit {config.task}"):
            positions, velocities, _ = simulator.joint_state()
            seen = copy.deepcopy(controller.history)  # the history as the planner sees it
            _, torque = controller.act(positions, velocities)
            if controller.planned:
                obs = task.observation(positions, velocities)
                seen.current_reward = controller.history.current_reward
                chosen = planner.last.plan  # (N, m)
                reference.plan(obs, seen)
                ref_plan = reference.last.plan[None]  # (1, N, m)
                pred_obs, pred_reward = planner.dynamics.rollout(seen, obs, ref_plan)
                plans.append({
                    "step": t,
                    "chosen_predicted": planner.last.predicted_return,
                    "chosen_true": replay_return(simulator, task, chosen, repeat),
                    "reference_true": replay_return(simulator, task, ref_plan[0], repeat),
                    "reference_predicted": float(planner.objective(pred_obs, pred_reward, ref_plan)[0]),
                })
            rewards.append(simulator.step(torque))
    finally:
        planner.dynamics.close()
        reference.dynamics.close()
    return {"config": dataclasses.asdict(config), "steps": steps, "horizon": horizon, "action_repeat": repeat,
            "reference": {"planner": "warm_start", "model": "mujoco", "samples": reference_samples},
            "rewards": reward_trace(rewards), "plans": plans, "summary": summarize_audit(plans)}


def summarize_audit(plans: list[dict[str, Any]], margin: float = 0.5) -> dict[str, float]:
    """Means over plans of the model's optimism (predicted - true return of its chosen plan), of the
    true return lost to the reference plan, and the share of plans where the model ranks a reference
    plan truly better by more than `margin` (summed reward) below its choice."""
    if not plans:
        return {"plans": 0}
    col = {k: np.array([p[k] for p in plans]) for k in plans[0] if k != "step"}
    better = col["reference_true"] > col["chosen_true"] + margin
    misranked = better & (col["reference_predicted"] < col["chosen_predicted"])
    return {"plans": len(plans), "margin": margin,
            "optimism": float(np.mean(col["chosen_predicted"] - col["chosen_true"])),
            "reference_gain": float(np.mean(col["reference_true"] - col["chosen_true"])),
            "misranked_share": float(np.mean(misranked))}


def format_audit(result: dict[str, Any]) -> str:
    """A markdown table of the audited plans and a line of summary."""
    lines = ["| step | reward | chosen: predicted | chosen: true | reference: true | reference: predicted |",
             "|---|---|---|---|---|---|"]
    for p in result["plans"]:
        lines.append(f"| {p['step']} | {result['rewards'][p['step']]:.2f} | {p['chosen_predicted']:.2f} | "
                     f"{p['chosen_true']:.2f} | {p['reference_true']:.2f} | {p['reference_predicted']:.2f} |")
    s = result["summary"]
    if s["plans"]:
        lines.append(f"\n{s['plans']} plans (returns over {result['horizon']} model steps): optimism "
                     f"{s['optimism']:+.2f}, the reference plan's true gain {s['reference_gain']:+.2f}, "
                     f"a reference better by > {s['margin']} ranked below the choice in "
                     f"{100 * s['misranked_share']:.0f}%")
    return "\n".join(lines)


def plot_audit(result: dict[str, Any], path: str) -> None:
    """Predicted and true returns of the chosen and reference plans, and the reward, against control step."""
    plt = pyplot()

    steps = [p["step"] for p in result["plans"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, height_ratios=[2, 1])
    for key, style, label in (("chosen_predicted", "C0--", "chosen plan, predicted"),
                              ("chosen_true", "C0-", "chosen plan, true"),
                              ("reference_predicted", "C1--", "reference plan, predicted"),
                              ("reference_true", "C1-", "reference plan, true")):
        top.plot(steps, [p[key] for p in result["plans"]], style, label=label)
    top.set_ylabel(f"return over {result['horizon']} steps")
    top.legend(fontsize=7)
    top.grid(alpha=0.3)
    bottom.plot(result["rewards"], "k-")
    bottom.set_ylabel("reward")
    bottom.set_xlabel("control step")
    bottom.grid(alpha=0.3)
    c = result["config"]
    fig.suptitle(f"{c['task']}: {c['model']}, {c['planner']}, seed {c['seed']}", fontsize=9)
    fig.tight_layout()
    save(fig, path, dpi=100)
