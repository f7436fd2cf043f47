r"""`tdm-control`: evaluate planners and models on the simulator, list what is available.

    tdm-control eval --task cartpole_swingup --model mujoco --planner random_shooting \
        --samples 128 --horizon 50 --episodes 4 --seed 0 --out results/rs.json
    tdm-control audit --task walker_stand --model models/walker_stand_tdm_v3.onnx --planner proposal \
        --samples 32 --horizon 15 --noise-variance 0.05 --seed 4 --steps 40
    tdm-control prediction-error --task cartpole_swingup --model tdm=models/cartpole_swingup_tdm.onnx \
        --model mujoco --action-repeat 2 --horizon 50 --starts 30 --plot results/prediction_error.png
    tdm-control grid config/eval/cartpole_swingup.yaml          # --report: only rewrite the report
    tdm-control launch config/cartpole.yaml --steps 200
    tdm-control plot-rewards realtime=results/realtime.json lockstep=results/lockstep.json --out results/r.png
    tdm-control graph                                           # the running ROS 2 nodes, their topics
    tdm-control list
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Sequence

import yaml

from tdm_control.config import ConfigError
from tdm_control.dynamics import MODELS
from tdm_control.planning import OBJECTIVES, PLANNERS
from tdm_control.ros import launcher
from tdm_control.tasks import TASKS

if TYPE_CHECKING:
    from tdm_control.evaluation.episodes import EvalConfig


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None


def _model(text: str) -> str:
    model = text.split("=", 1)[1] if "=" in text else text
    if model in MODELS or model.endswith(".onnx"):
        return text
    raise argparse.ArgumentTypeError(
        f"invalid model {text!r}: choose one of {', '.join(MODELS)} or give a path to an exported .onnx file")


def _task(text: str) -> str:
    """argparse type of --task: a registered task, or a variant '<task>~v<seed>'."""
    from tdm_control.tasks.variants import SEPARATOR, parse_variant_name

    if SEPARATOR in text:
        try:
            parse_variant_name(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    elif text not in TASKS:
        raise argparse.ArgumentTypeError(f"unknown task {text!r}: choose one of {', '.join(sorted(TASKS))}, or a "
                                         f"variant '<task>{SEPARATOR}<seed>'")
    return text


TASK_HELP = f"task: {', '.join(sorted(TASKS))}, or a randomized variant, e.g. cartpole_swingup~v17"


def _add_episode_arguments(p: argparse.ArgumentParser) -> None:
    """Task, model, planner and seed: what defines the episodes of `eval` and `audit`."""
    p.add_argument("--task", type=_task, default="cartpole_swingup", help=TASK_HELP)
    p.add_argument("--model", type=_model, default="mujoco",
                   help=f"dynamics model: {', '.join(MODELS)}, a path to an exported .onnx file, or "
                        f"several joined by '+' (an ensemble)")
    p.add_argument("--planner", choices=sorted(PLANNERS), default="random_shooting")
    p.add_argument("--samples", type=int, help="K, candidate sequences per step")
    p.add_argument("--horizon", type=int, help="N, steps each candidate looks ahead")
    p.add_argument("--noise-variance", type=float, help="Brownian noise variance over the horizon")
    p.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any other planner config key, e.g. --set warm_fraction=0.5")
    p.add_argument("--action-repeat", type=int, default=0,
                   help="control steps each planned action is held; 0: the model's own (1 for mujoco)")
    p.add_argument("--objective", choices=list(OBJECTIVES), default="observation",
                   help="sum of task rewards of predicted observations, or of predicted rewards")
    p.add_argument("--seed", type=int, default=0, help="the first episode's start and planner noise")


def _eval_config(args: argparse.Namespace, episodes: int, steps: int | None) -> "EvalConfig":
    """The EvalConfig the episode arguments describe."""
    from tdm_control.evaluation.episodes import EvalConfig

    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    params = dict(args.set)
    for key in ("samples", "horizon", "noise_variance"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    return EvalConfig(task=args.task, model=args.model, planner=args.planner, planner_params=params,
                      objective=args.objective, episodes=episodes, steps=steps, seed=args.seed,
                      action_repeat=args.action_repeat)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdm-control", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("eval", help="run closed-loop MPC episodes and report the return")
    _add_episode_arguments(ev)
    ev.add_argument("--episodes", type=int, default=4)
    ev.add_argument("--steps", type=int, default=None, help="steps per episode (default: the task's 1000)")
    ev.add_argument("--out", default=None, help="write the JSON result here")
    ev.add_argument("--video", metavar="FILE", help="film the episodes offscreen into FILE (.mp4, or .gif; MP4 needs "
                                                    "imageio-ffmpeg, else a GIF is written), each step's reward shown")
    ev.add_argument("--video-size", default="320x240", metavar="WxH", help="rendered frame size in pixels")
    ev.add_argument("--video-fps", type=float, default=25.0, help="video frames per second (real-time playback)")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    au = sub.add_parser("audit", help="audit the plans of one episode: predicted against true returns, and "
                                      "the ground-truth planner's plan from the same states")
    _add_episode_arguments(au)
    au.add_argument("--steps", type=int, default=100, help="control steps to audit")
    au.add_argument("--reference-samples", type=int, default=64,
                    help="K of the reference planner (warm start on the ground truth, the same horizon)")
    au.add_argument("--out", default=None, help="write the JSON result here")
    au.add_argument("--plot", default=None, help="write a PNG plot of the returns against control step here")
    au.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    pe = sub.add_parser("prediction-error", help="open-loop prediction error of models against the simulator")
    pe.add_argument("--task", type=_task, default="cartpole_swingup", help=TASK_HELP)
    pe.add_argument("--model", type=_model, action="append", required=True,
                    help="a model to measure; repeat for several (label with NAME=MODEL)")
    pe.add_argument("--horizon", type=int, default=100, help="model steps predicted")
    pe.add_argument("--action-repeat", type=int, default=0,
                    help="for mujoco: control steps per model step (exported models use their own)")
    pe.add_argument("--starts", type=int, default=30)
    pe.add_argument("--seed", type=int, default=0)
    pe.add_argument("--out", default=None, help="write the JSON results here")
    pe.add_argument("--plot", default=None, help="write a PNG plot of error against steps ahead here")
    pe.add_argument("--no-progress", action="store_true")

    grid = sub.add_parser("grid", help="run an evaluation grid (resumable, parallel) and write its report")
    grid.add_argument("spec", help="grid YAML, e.g. config/eval/cartpole_swingup.yaml")
    grid.add_argument("--report", action="store_true", help="only write the report from the runs on disk")
    grid.add_argument("--no-progress", action="store_true")
    pr = sub.add_parser("plot-rewards", help="plot the reward of every step of episodes from result JSONs")
    pr.add_argument("results", nargs="+", metavar="LABEL=RESULT",
                    help="a result JSON of `launch --result` or `eval --out`, optionally labelled")
    pr.add_argument("--episode", type=int, default=0, help="which episode of each result (default 0)")
    pr.add_argument("--title", default="reward of every control step")
    pr.add_argument("--out", required=True, help="the PNG to write")
    launch = sub.add_parser("launch", help="run the ROS 2 nodes (bridge and planner) as processes, "
                                           "without ROS 2 launch")
    launcher.add_arguments(launch)

    graph = sub.add_parser("graph", help="list the ROS 2 nodes running in this ROS_DOMAIN_ID, with their topics "
                                         "and services (as `ros2 node info`), without ROS 2")
    graph.add_argument("--wait", type=float, default=GRAPH_WAIT_S,
                       help="seconds to listen for the nodes' announcements (discovery takes a moment)")
    graph.add_argument("--json", action="store_true", help="print the nodes as JSON")

    sub.add_parser("list", help="list tasks, planners and models")
    return parser


GRAPH_WAIT_S = 2.0
"""How long `tdm-control graph` listens by default: discovery of a local graph takes well under a second."""


def _graph(args: argparse.Namespace) -> int:
    import dataclasses

    from tdm_control.ros.discovery import discovery_settings
    from tdm_control.ros.graph import format_graph, read_graph

    if not args.wait > 0:
        raise ConfigError(f"--wait must be > 0 s, got {args.wait}")
    nodes = read_graph(discovery_settings(), args.wait)
    if args.json:
        print(json.dumps([{**dataclasses.asdict(n), "full_name": n.full_name} for n in nodes], indent=1))
    else:
        print(format_graph(nodes))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tdm_control.evaluation.episodes import evaluate, write_result

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    config = _eval_config(args, args.episodes, args.steps)
    video = None
    if args.video:
        from tdm_control.evaluation.video import VideoConfig, parse_size

        width, height = parse_size(args.video_size)
        video = VideoConfig(path=args.video, width=width, height=height, fps=args.video_fps)
    try:
        result = evaluate(config, show_progress=not args.no_progress, video=video)
    except RuntimeError as e:
        from tdm_control.evaluation.video import RenderError

        if isinstance(e, RenderError):  # a missing GL library: one line that says what to install
            raise ConfigError(str(e)) from None
        raise
    lo, hi = result["return_interval_68"]
    print(f"{args.task} | model {args.model} | planner {args.planner} {json.dumps(result['planner_config'])}")
    if result["action_repeat"] > 1:
        print(f"planned every {result['action_repeat']} control steps (the action held in between)")
    print(f"mean return {result['mean_return']:.1f}  (68% interval {lo:.1f} .. {hi:.1f}, "
          f"{len(result['returns'])} episodes of {result['steps']} steps: "
          f"{', '.join(f'{r:.1f}' for r in result['returns'])})")
    print(f"planning latency median {1e3 * result['latency_median_s']:.1f} ms, "
          f"p95 {1e3 * result['latency_p95_s']:.1f} ms")
    if args.out:
        write_result(result, args.out)
        print(f"wrote {args.out}")
    if "video" in result:
        print(f"wrote {result['video']}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from tdm_control.evaluation.audit import audit_episode, format_audit, plot_audit
    from tdm_control.evaluation.episodes import write_result

    if args.reference_samples < 1:
        raise ConfigError(f"--reference-samples must be >= 1, got {args.reference_samples}")
    config = _eval_config(args, 1, args.steps)
    result = audit_episode(config, args.steps, args.reference_samples, show_progress=not args.no_progress)
    print(format_audit(result))
    if args.out:
        write_result(result, args.out)
        print(f"wrote {args.out}")
    if args.plot:
        plot_audit(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _prediction_error(args: argparse.Namespace) -> int:
    from tdm_control.dynamics import make_dynamics
    from tdm_control.evaluation.episodes import write_result
    from tdm_control.evaluation.prediction_error import PredictionErrorConfig, plot_errors, prediction_errors
    from tdm_control.tasks import make_task

    if args.horizon < 1 or args.starts < 1:
        raise ConfigError("--horizon and --starts must be >= 1")
    task = make_task(args.task)
    config = PredictionErrorConfig(horizon=args.horizon, starts=args.starts, seed=args.seed)
    results = []
    for text in args.model:
        label, model = text.split("=", 1) if "=" in text else (text, text)
        dynamics = make_dynamics(model, task, action_repeat=args.action_repeat if model == "mujoco" else 0)
        try:
            result = prediction_errors(task, dynamics, config, show_progress=not args.no_progress)
        finally:
            dynamics.close()
        result["label"] = label
        results.append(result)
        median = result["median_rms"]
        marks = [k for k in (1, 10, 25, 50, 100) if k <= len(median)]
        print(f"{label}: median RMS error at k = " + ", ".join(f"{k}: {median[k - 1]:.4g}" for k in marks))
    if args.out:
        write_result({"task": args.task, "results": results}, args.out)
        print(f"wrote {args.out}")
    if args.plot:
        plot_errors(results, args.plot, f"{args.task}: open-loop prediction error under Brownian actions")
        print(f"wrote {args.plot}")
    return 0


def _grid(args: argparse.Namespace) -> int:
    from tdm_control.evaluation.grid import expand, load_grid, run_grid
    from tdm_control.evaluation.grid_report import write_report

    config = load_grid(args.spec)
    for run in expand(config):  # fail on a bad planner key before hours of work
        from tdm_control.planning import planner_config

        planner_config(run["planner"], run["planner_params"])
    if not args.report:
        run_grid(config, show_progress=not args.no_progress)
    for path in write_report(config, show_progress=not args.no_progress):
        print(f"wrote {path}")
    return 0


def _plot_rewards(args: argparse.Namespace) -> int:
    from tdm_control.evaluation.plots import episode_rewards, plot_rewards

    curves = []
    for item in args.results:
        label, path = item.split("=", 1) if "=" in item else (item, item)
        rewards = episode_rewards(path)
        if not 0 <= args.episode < len(rewards):
            raise ConfigError(f"{path} holds {len(rewards)} episode(s); there is no episode {args.episode}")
        curves.append((label, rewards[args.episode]))
        print(f"{label}: episode {args.episode}, {len(rewards[args.episode])} steps, "
              f"return {sum(rewards[args.episode]):.1f}")
    plot_rewards(curves, args.out, args.title)
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
        if args.command == "audit":
            return _audit(args)
        if args.command == "prediction-error":
            return _prediction_error(args)
        if args.command == "grid":
            return _grid(args)
        if args.command == "launch":
            return launcher.main(args)
        if args.command == "plot-rewards":
            return _plot_rewards(args)
        if args.command == "graph":
            return _graph(args)
        return _list()
    except (ConfigError, FileNotFoundError) as e:
        print(f"tdm-control: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
