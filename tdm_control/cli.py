"""`tdm-control`: evaluate planners and models on the simulator, list what is available.

    tdm-control eval --task cartpole_swingup --model mujoco --planner random_shooting \
        --samples 128 --horizon 50 --episodes 4 --seed 0 --out results/rs.json
    tdm-control launch config/cartpole.yaml --steps 200
    tdm-control list
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import yaml

from tdm_control import launcher
from tdm_control.config import ConfigError
from tdm_control.dynamics import MODELS
from tdm_control.planning import PLANNERS
from tdm_control.tasks import TASKS


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _model(text: str) -> str:
    if text in MODELS or text.endswith(".onnx"):
        return text
    raise argparse.ArgumentTypeError(
        f"invalid model {text!r}: choose one of {', '.join(MODELS)} or give a path to an exported .onnx file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdm-control", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("eval", help="run closed-loop MPC episodes and report the return")
    ev.add_argument("--task", choices=sorted(TASKS), default="cartpole_swingup")
    ev.add_argument("--model", type=_model, default="mujoco",
                    help=f"dynamics model: {', '.join(MODELS)} or a path to an exported .onnx file")
    ev.add_argument("--planner", choices=sorted(PLANNERS), default="random_shooting")
    ev.add_argument("--samples", type=int, help="K, candidate sequences per step")
    ev.add_argument("--horizon", type=int, help="N, steps each candidate looks ahead")
    ev.add_argument("--noise-variance", type=float, help="Brownian noise variance over the horizon")
    ev.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                    help="any other planner config key, e.g. --set warm_fraction=0.5")
    ev.add_argument("--objective", choices=["observation", "predicted"], default="observation",
                    help="sum of task rewards of predicted observations, or of predicted rewards")
    ev.add_argument("--episodes", type=int, default=4)
    ev.add_argument("--steps", type=int, default=None, help="steps per episode (default: the task's 1000)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default=None, help="write the JSON result here")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    launch = sub.add_parser("launch", help="run the ROS 2 nodes (bridge and planner) as processes, "
                                           "without ROS 2 launch")
    launcher.add_arguments(launch)

    sub.add_parser("list", help="list tasks, planners and models")
    return parser


def _eval(args: argparse.Namespace) -> int:
    from tdm_control.evaluation import EvalConfig, evaluate, write_result

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    params = dict(args.set)
    for key in ("samples", "horizon", "noise_variance"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    config = EvalConfig(task=args.task, model=args.model, planner=args.planner, planner_params=params,
                        objective=args.objective, episodes=args.episodes, steps=args.steps, seed=args.seed)
    result = evaluate(config, show_progress=not args.no_progress)
    lo, hi = result["return_interval_68"]
    print(f"{args.task} | model {args.model} | planner {args.planner} {json.dumps(result['planner_config'])}")
    print(f"mean return {result['mean_return']:.1f}  (68% interval {lo:.1f} .. {hi:.1f}, "
          f"{len(result['returns'])} episodes of {result['steps']} steps: "
          f"{', '.join(f'{r:.1f}' for r in result['returns'])})")
    print(f"planning latency median {1e3 * result['latency_median_s']:.1f} ms, "
          f"p95 {1e3 * result['latency_p95_s']:.1f} ms")
    if args.out:
        write_result(result, args.out)
        print(f"wrote {args.out}")
    return 0


def _list() -> int:
    print("tasks:    " + ", ".join(sorted(TASKS)))
    print("planners: " + ", ".join(sorted(PLANNERS)))
    print("models:   " + ", ".join(MODELS) + ", or a path to an exported .onnx file")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "eval":
            return _eval(args)
        if args.command == "launch":
            return launcher.main(args)
        return _list()
    except (ConfigError, FileNotFoundError) as e:
        print(f"tdm-control: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
