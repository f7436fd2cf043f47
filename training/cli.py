"""`tdm-train`: collect data, fit the TDM, export it to ONNX, from one YAML config.

    tdm-train all     --config config/training/cartpole_swingup.yaml   # the three stages below
    tdm-train collect --config ... [--episodes N]
    tdm-train fit     --config ... [--max-steps N]
    tdm-train export  --config ... [--out models/x.onnx]
    tdm-train stats   --config ...     # what each dataset folder holds: returns by policy, success share
    tdm-train loss    --config ... --checkpoint runs/a/checkpoint.pt [--checkpoint ...]
                                       # checkpoints' losses on this pipeline's held-out windows
    tdm-train import-bag --task cartpole_swingup --out data/cartpole_bags BAG [BAG ...]
                                       # ROS 2 bags of joint states and commands -> a dataset folder
    tdm-train subset --from data/cartpole_target --episodes 10 --draw 0 --out data/cartpole_M10_d0
                                       # M episodes of a dataset, drawn with a seed (few-shot data)

Data-parallel training: torchrun --nproc_per_node 2 -m training.cli fit --config ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Sequence

from tdm_control.config import ConfigError
from training.errors import TrainingError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdm-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [("collect", "collect episodes into the dataset folder"),
                       ("fit", "train (or resume) the TDM"),
                       ("export", "export the trained TDM to ONNX with a parity check"),
                       ("all", "collect, fit and export"),
                       ("stats", "summarize the collected dataset (returns by policy, share of successful steps)"),
                       ("loss", "validation loss of TDM checkpoints on this pipeline's held-out windows")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="pipeline YAML, e.g. config/training/cartpole_swingup.yaml")
        p.add_argument("--no-progress", action="store_true")
        if name in ("collect", "all"):
            p.add_argument("--episodes", type=int, help="override collect.episodes")
            p.add_argument("--workers", type=int, help="override collect.workers")
        if name in ("fit", "all"):
            p.add_argument("--max-steps", type=int, help="override train.max_steps")
        if name in ("export", "all"):
            p.add_argument("--out", help="override model_path")
        if name == "export":
            p.add_argument("--checkpoint", help="export this checkpoint (e.g. a kept runs/<run>/checkpoint_<step>.pt) "
                                                "instead of the run's latest")
        if name == "loss":
            p.add_argument("--checkpoint", action="append", required=True,
                           help="a runs/<run>/checkpoint.pt; repeat to compare several on the same windows")
    p = sub.add_parser("subset", help="write M episodes of a dataset, drawn with a seed, as a new dataset folder "
                                      "(few-shot fine-tuning data)")
    p.add_argument("--from", dest="source", required=True, help="the dataset folder to draw from")
    p.add_argument("--episodes", type=int, required=True, help="M, episodes to draw")
    p.add_argument("--draw", type=int, default=0, help="seed of the draw: independent draws of M episodes")
    p.add_argument("--out", required=True, help="the new dataset folder")
    add_import_arguments(sub.add_parser(
        "import-bag", help="turn ROS 2 bags (rosbag2, MCAP or sqlite3) of joint states and effort commands into "
                           "a dataset folder that `fit` reads (data_dir:)"))
    return parser


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    from training.bag_import import ImportConfig

    default = ImportConfig(task="")
    p.add_argument("bags", nargs="+", metavar="BAG", help="rosbag2 folders (with metadata.yaml), e.g. from "
                                                         "`tdm-control launch --record`")
    p.add_argument("--task", required=True, help="registered task the robot runs, e.g. cartpole_swingup")
    p.add_argument("--out", required=True, help="the dataset folder to write (new or empty), e.g. data/NAME")
    p.add_argument("--joints", help="actuated joints in command order, comma-separated (the controller's "
                                    "`joints`; default: the task's actuator order)")
    p.add_argument("--action-repeat", type=int, default=default.action_repeat,
                   help="control steps per dataset step (commands must hold each action that long)")
    p.add_argument("--max-gap", type=float, default=default.max_gap,
                   help="seconds between joint-state stamps that end an episode (default: 2.5 control steps)")
    p.add_argument("--min-steps", type=int, default=default.min_steps,
                   help="dataset steps an episode needs to be kept")
    for role, flag in (("joint_states_topic", "--joint-states-topic"), ("command_topic", "--command-topic"),
                       ("reward_topic", "--reward-topic"), ("episode_topic", "--episode-topic"),
                       ("clock_topic", "--clock-topic")):
        p.add_argument(flag, default=getattr(default, role), help=f"default {getattr(default, role)}")


def import_bag(args: argparse.Namespace) -> int:
    """`tdm-train import-bag`: writes the dataset and says what it holds."""
    from tdm_control.config import from_dict
    from training.bag_import import ImportConfig, import_bags

    config = from_dict(ImportConfig, {
        "task": args.task, "joints": tuple(j.strip() for j in args.joints.split(",")) if args.joints else (),
        "action_repeat": args.action_repeat, "max_gap": args.max_gap, "min_steps": args.min_steps,
        "joint_states_topic": args.joint_states_topic, "command_topic": args.command_topic,
        "reward_topic": args.reward_topic, "episode_topic": args.episode_topic, "clock_topic": args.clock_topic})
    section = import_bags(args.bags, args.out, config)
    steps = sum(e["steps"] for e in section["episodes"])
    print(f"imported {len(section['episodes'])} episode(s), {steps} dataset steps, from {len(section['bags'])} bag(s) "
          f"into {args.out}")
    for e in section["episodes"]:
        print(f"  episode {e['index']}: bag {e['bag']}, {e['steps']} steps from {e['start_stamp_s']:.3f} s "
              f"({e['boundary']}; rewards {e['rewards_from']})")
    skipped = {k: v for k, v in section["skipped"].items() if v}
    if skipped:
        print("skipped: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()))
    return 0


def run(args: argparse.Namespace) -> int:
    from training.pipeline import load_pipeline

    if args.command == "import-bag":
        return import_bag(args)
    if args.command == "subset":
        from training.dataset import subset_dataset

        taken = subset_dataset(args.source, args.out, args.episodes, args.draw)
        print(f"{args.out}: episodes {taken} of {args.source} (draw {args.draw})")
        return 0
    pipeline = load_pipeline(args.config)
    progress = not args.no_progress
    if args.command == "stats":
        from training.dataset import summarize_dataset

        for folder in pipeline.data_dirs:
            print_stats(summarize_dataset(folder))
        return 0
    if args.command == "loss":
        from training.train import checkpoint_losses

        rows = checkpoint_losses(args.checkpoint, pipeline.data_dirs, pipeline.train_config(),
                                 pipeline.model_config(), across_tasks=bool(pipeline.tasks))
        print(f"validation windows of {', '.join(pipeline.data_dirs)} (nats per target token):")
        for r in rows:
            roles = "  ".join(f"{k} {'-' if r[k] is None else format(r[k], '.4f')}"
                              for k in ("observation", "reward", "action"))
            print(f"{r['checkpoint']} (step {r['step']}): loss {r['loss']:.4f}  {roles}")
        return 0
    if args.command in ("collect", "all"):
        from training.collect import collect

        overrides = {k: v for k, v in (("episodes", args.episodes), ("workers", args.workers)) if v is not None}
        for task, folder in pipeline.collected:
            done = collect(pipeline.collect_config(task, **overrides), folder, show_progress=progress)
            print(f"collected {len(done)} new episodes into {folder}")
    if args.command in ("fit", "all"):
        overrides = {"max_steps": args.max_steps} if args.max_steps is not None else {}
        pooling = {"across_tasks": True} if pipeline.tasks else {}  # a generalist (always a TDM) pools its tasks
        if pipeline.kind == "tdm":
            from training.train import train
        else:
            from training.baselines import train_baseline as train
        metrics = train(pipeline.data_dirs, pipeline.run_dir, pipeline.model_config(),
                        pipeline.train_config(**overrides), show_progress=progress, **pooling)
        if int(os.environ.get("RANK", "0")) == 0:
            print("trained:", json.dumps(metrics))
    if args.command in ("export", "all") and int(os.environ.get("RANK", "0")) == 0:
        from training.train import CHECKPOINT

        checkpoint = getattr(args, "checkpoint", None) or os.path.join(pipeline.run_dir, CHECKPOINT)
        out = args.out or pipeline.model_path
        if pipeline.kind == "tdm":
            from training.export import export

            report = export(checkpoint, out, pipeline.export_config())
        else:
            from training.baselines import export_baseline

            report = export_baseline(checkpoint, out)
        print("exported:", json.dumps(report))
    return 0


def print_stats(stats: dict) -> None:
    print(f"{stats['folder']}: {stats['task']}, {stats['episodes']} episodes, {stats['dataset_steps']} dataset steps "
          f"(action repeat {stats['action_repeat']})")
    print(f"episode return: mean {stats['return_mean']:.1f}, median {stats['return_median']:.1f}")
    for g in stats["by_policy"]:
        print(f"  {g['policy']:>13}: {g['count']:4d} episodes, mean return {g['return_mean']:.1f}")
    print(f"steps with reward >= {stats['success_reward']}: {100 * stats['success_share']:.1f}%")
    print(f"episodes whose reward drops below {stats['lost_reward']} after reaching {stats['success_reward']}: "
          f"{stats['lost_episodes']}, of which {stats['recovered_episodes']} reach it again")


def _terminate(signum: int, _frame) -> None:
    """SIGTERM (`kill`, a job scheduler) unwinds like Ctrl-C, so cleanup runs: the collector's worker
    processes are stopped with it instead of collecting on as orphans."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except (ConfigError, FileNotFoundError, TrainingError) as e:  # each says what is wrong and what to do
        print(f"tdm-train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
