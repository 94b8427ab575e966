"""The ``prunepose`` command line. Thin: parsing and printing only; the work lives in the library."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from prunepose.errors import PrunePoseError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--data-root", help="folder the config's relative data paths are resolved against")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when available)")


def cmd_models(args: argparse.Namespace) -> int:
    from prunepose.registry import create_model, get_config, list_models

    rows = []
    for name in list_models(args.filter):
        c = get_config(name)
        if hasattr(c, "num_frames"):  # 2D->3D lifter: (frames, joints) instead of an image size
            stages = getattr(c, "stages", ())
            row = [name, "lifting", type(c).__name__.replace("Config", ""), f"{c.num_frames} frames",
                   str(c.num_joints), ",".join(str(layer) for layer, _ in stages) or "-",
                   ",".join(str(n) for _, n in stages) or "-"]
        else:
            keep = (",".join(f"{r:g}" for r in c.keep_rates) if hasattr(c, "keep_rates") else f"{c.keep_ratio:g}")
            row = [name, c.family, c.backbone, f"{c.input_size[1]}x{c.input_size[0]}", str(c.num_keypoints),
                   ",".join(map(str, c.prune_layers)) or "-", keep]
        if args.params:
            from prunepose.profiling import count_params

            row.append(f"{count_params(create_model(name)) / 1e6:.3f}M")
        rows.append(row)
    head = ["model", "family", "backbone", "input", "K", "prune at", "keep"] + (["params"] if args.params else [])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def _device(arg: str | None) -> str:
    import torch

    if arg:
        return arg
    return "cuda" if torch.cuda.is_available() else "cpu"


def cmd_train(args: argparse.Namespace) -> int:
    from prunepose.config import load_config
    from prunepose.engine.trainer import Trainer
    from prunepose.registry import create_model
    from prunepose.tasks.topdown import build_dataset, loss_for, uses_simcc
    from prunepose.weights import load_weights

    cfg = load_config(args.config, args.set, args.data_root)
    _seed_model_init(cfg)
    model = create_model(cfg["model"], **cfg["model_overrides"])
    if hasattr(model.config, "num_frames"):
        return _train_lifting(args, cfg, model)
    init = {"checkpoint": args.init, "strict": True} if args.init else (cfg.get("init") or {})
    if init.get("checkpoint"):
        load_weights(model, init["checkpoint"], strict=bool(init.get("strict", True)))
    train_set = build_dataset(cfg, model.config, "train")
    val_set = build_dataset(cfg, model.config, "val") if cfg["data"].get("val") else None
    tcfg = _train_config(args, cfg)
    callbacks, post_step, extra, eval_model = _training_extras(cfg, model, tcfg, len(train_set))
    evaluate_fn = None if val_set is None else _make_evaluate_fn(cfg, val_set, eval_model)
    trainer = Trainer(model, train_set, loss_for(model.config), tcfg, evaluate_fn=evaluate_fn,
                      step_callbacks=callbacks, post_step_callbacks=post_step, extra_state=extra)
    if uses_simcc(model.config) and not extra and trainer.dist.is_main:
        print("note: training GTPT without an EMA of the weights (ema.enabled: false)")
    return _fit(trainer, args)


def _seed_model_init(cfg: dict) -> None:
    """Seed Python, numpy and torch with ``train.seed`` before the model is built.

    Why here: the initial weights are drawn when the model is built, before the Trainer seeds anything, so
    without this two fresh runs with one seed started from different weights (and differed throughout).
    Every DDP rank builds the same initial model this way (the Trainer then seeds rank-dependently).
    """
    import random

    import numpy as np
    import torch

    from prunepose.errors import ConfigError

    value = (cfg.get("train") or {}).get("seed", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"train.seed must be an integer, got {value!r}")
    seed = value
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _train_config(args: argparse.Namespace, cfg: dict):  # noqa: ANN202
    """The engine's TrainConfig from the config's ``train`` section; also saves the resolved config."""
    from prunepose.config import dump_config
    from prunepose.engine.trainer import TrainConfig
    from prunepose.errors import ConfigError

    train_cfg = dict(cfg["train"])
    train_cfg.setdefault("work_dir", f"work_dirs/{Path(args.config).stem}")
    if args.work_dir:
        train_cfg["work_dir"] = args.work_dir
    try:
        tcfg = TrainConfig(**train_cfg)
    except TypeError as exc:
        raise ConfigError(f"{args.config}: bad 'train' section ({exc})") from None
    Path(tcfg.work_dir).mkdir(parents=True, exist_ok=True)
    (Path(tcfg.work_dir) / "config.yaml").write_text(dump_config(cfg))
    return tcfg


def _fit(trainer, args: argparse.Namespace) -> int:  # noqa: ANN001
    """Run the trainer (resuming unless --no-resume), print a one-line JSON summary on rank 0, and leave
    the process group (all ranks together) so a torchrun job exits cleanly."""
    from prunepose.engine.distributed import cleanup

    summary = trainer.fit(resume=False if args.no_resume else (args.resume or True))
    if trainer.dist.is_main:
        print(json.dumps({k: summary[k] for k in ("global_step", "epoch_losses", "best_score", "last_checkpoint")
                          if k in summary}, default=str))
    cleanup()
    return 0


def _train_lifting(args: argparse.Namespace, cfg: dict, model) -> int:  # noqa: ANN001
    """`prunepose train` for 2D->3D lifters on Human3.6M (same engine: resume, DDP, checkpoints)."""
    from prunepose.engine.trainer import Trainer
    from prunepose.tasks.lifting import build_lifting_datasets, evaluate_lifting, lifting_loss

    _init_lifter(model, args.init, cfg.get("init") or {})
    train_set, test_set, _ = build_lifting_datasets(cfg, model.config)
    tcfg = _train_config(args, cfg)
    test_cfg = cfg.get("test") or {}

    def evaluate_fn(m, epoch):  # noqa: ANN001, ANN202, ARG001
        res = evaluate_lifting(m, test_set, int(test_cfg.get("batch_size", 16)), bool(test_cfg.get("flip", True)),
                               progress=False)
        return {k: v for k, v in res.items() if k != "per_action"}

    trainer = Trainer(model, train_set, lifting_loss, tcfg, evaluate_fn=evaluate_fn)
    return _fit(trainer, args)


def _init_lifter(model, cli_init: str | None, cfg_init: dict) -> None:  # noqa: ANN001
    """Starting weights of a lifter (``--init`` or the config's ``init``). A HoT model also accepts its
    unpruned twin's checkpoint (MixSTE -> HoT-MixSTE): every twin weight must land and only TPC/TRA stay
    at their initial values (`prunepose.models.lifting.twin`); anything else loads strictly."""
    from prunepose.models.lifting.twin import is_hot, load_twin_into_hot
    from prunepose.weights import load_weights, read_state_dict

    path = cli_init or cfg_init.get("checkpoint")
    if not path:
        return
    if is_hot(model) and not any(k.startswith(("pruning.", "recovery.")) for k in read_state_dict(path)):
        fresh = load_twin_into_hot(model, path)
        print(f"init: {path} is the unpruned twin; {len(fresh)} HoT weights start fresh "
              f"({', '.join(sorted({k.split('.')[0] for k in fresh}))})")
        return
    strict = True if cli_init else bool(cfg_init.get("strict", True))
    load_weights(model, path, strict=strict)
    print(f"init: weights from {path}")


def _training_extras(cfg: dict, model, tcfg, num_samples: int):  # noqa: ANN001, ANN202
    """Family-specific training helpers: PPT's keep-ratio schedule, GTPT's EMA of the weights.

    Returns (step callbacks, post-step callbacks, extra checkpoint state, model to evaluate or None).
    """
    from prunepose.engine.distributed import get_world_size
    from prunepose.engine.ema import ModelEMA
    from prunepose.pruning.schedule import KeepRatioSchedule
    from prunepose.tasks.topdown import uses_simcc

    callbacks, post_step, extra, eval_model = [], [], {}, None
    target = getattr(model.config, "keep_ratio", 1.0)
    sched = cfg.get("keep_ratio_schedule") or {}
    if target < 1.0 and sched.get("enabled", True):
        callbacks.append(KeepRatioSchedule(target, float(sched.get("warmup_epochs", 10)),
                                           float(sched.get("ramp_epochs", 100))))
    ema_cfg = cfg.get("ema") or {}
    if ema_cfg.get("enabled", uses_simcc(model.config)):
        steps_per_epoch = max(1, num_samples // (tcfg.batch_size * max(1, get_world_size())))
        ema = ModelEMA(model, float(ema_cfg.get("momentum", 0.996)), total_steps=tcfg.epochs * steps_per_epoch)
        post_step.append(ema.update)
        extra["ema"] = ema
        eval_model = ema.module
    return callbacks, post_step, extra, eval_model


def _make_evaluate_fn(cfg: dict, val_set, eval_model):  # noqa: ANN001, ANN202
    from prunepose.tasks.topdown import evaluate

    def evaluate_fn(model, epoch):  # noqa: ANN001, ANN202, ARG001  (engine callback signature)
        m = eval_model if eval_model is not None else model
        if hasattr(m, "keep_ratio"):
            m.keep_ratio = m.config.keep_ratio  # test with the target keep ratio, whatever the schedule says
        res = evaluate(m, val_set, cfg["test"], progress=False)
        return {k: v for k, v in res.items() if k != "summary"}

    return evaluate_fn


def cmd_test(args: argparse.Namespace) -> int:
    from prunepose.config import load_config
    from prunepose.registry import create_model
    from prunepose.tasks.topdown import build_dataset, evaluate
    from prunepose.weights import load_weights

    cfg = load_config(args.config, args.set, args.data_root)
    model = create_model(cfg["model"], **cfg["model_overrides"])
    load_weights(model, args.checkpoint, prefer_ema=not args.student)
    if hasattr(model.config, "num_frames"):
        return _test_lifting(args, cfg, model)
    dataset = build_dataset(cfg, model.config, "val")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = evaluate(model, dataset, cfg["test"], out_dir=out_dir, device=_device(args.device))
    summary = res.pop("summary", "")
    print(summary)
    (out_dir / "metrics.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res))
    return 0


def _test_lifting(args: argparse.Namespace, cfg: dict, model) -> int:  # noqa: ANN001
    """Evaluate a lifter on S9/S11 with projected 2D (and SH detections when the config lists them)."""
    from prunepose.tasks.lifting import build_lifting_datasets, evaluate_lifting

    _, test_gt, test_sh = build_lifting_datasets(cfg, model.config)
    test_cfg = cfg.get("test") or {}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    wanted = cfg["data"].get("test_keypoints") or ["gt"]
    for name, dataset in (("gt2d", test_gt), ("sh2d", test_sh)):
        if dataset is None or name[:-2] not in wanted:  # e.g. test_keypoints: [sh] skips the projected 2D
            continue
        res = evaluate_lifting(model, dataset, int(test_cfg.get("batch_size", 16)), bool(test_cfg.get("flip", True)),
                               device=_device(args.device))
        results[name] = res
        print(f"{name}: P1 {res['mpjpe_mm']:.1f} mm  P2 {res['p_mpjpe_mm']:.1f} mm  "
              f"N-MPJPE {res['n_mpjpe_mm']:.1f} mm  MPJVE {res['mpjve_mm']:.2f} mm (mean over actions)")
        for action, row in res["per_action"].items():
            print(f"  {action:<14} P1 {row['mpjpe']:6.1f}  P2 {row['p_mpjpe']:6.1f}")
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunepose", description="Efficient transformer pose estimation.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("filter", nargs="?", help="substring to filter names")
    p.add_argument("--params", action="store_true", help="also build each model and count its parameters")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a model from an experiment YAML (resumes from work_dir/last.pt)")
    _add_config_args(p)
    p.add_argument("--work-dir", help="where checkpoints and logs go (default work_dirs/<config name>)")
    p.add_argument("--resume", help="checkpoint to resume from (default: work_dir/last.pt when present)")
    p.add_argument("--no-resume", action="store_true", help="start fresh even if work_dir/last.pt exists")
    p.add_argument("--init", help="weights to start from (checkpoint or safetensors)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint on the config's val split")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True, help="checkpoint (.pt) or weights (.safetensors)")
    p.add_argument("--student", action="store_true",
                   help="evaluate the trained weights, not their EMA (when the checkpoint has one)")
    p.add_argument("--out", default="outputs/test", help="folder for results JSON and metrics")
    p.set_defaults(func=cmd_test)

    from prunepose.demo import add_demo_parser

    add_demo_parser(sub)

    from prunepose.api.cli import add_predict_parser
    from prunepose.api.lift_cli import add_lift_parser
    from prunepose.convert.cli import add_convert_parser
    from prunepose.export.cli import add_export_parser
    from prunepose.geometry.cli import add_triangulate_parser
    from prunepose.profiling.cli import add_profile_parser
    from prunepose.viz.cli import add_viz_parser

    add_profile_parser(sub)
    add_convert_parser(sub)
    add_viz_parser(sub)
    add_predict_parser(sub)
    add_lift_parser(sub)
    add_export_parser(sub)
    add_triangulate_parser(sub)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """Warnings during a command as one line (no source path and code line: they concern the user's input)."""
    print(f"prunepose: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from prunepose.runtime import tune_cpu_allocator

    args = build_parser().parse_args(argv)
    tune_cpu_allocator()
    try:
        with warnings.catch_warnings():  # scoped: a library user's warning handling stays untouched
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except PrunePoseError as exc:
        print(f"prunepose: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:
            raise
        # a path the user gave that cannot be read or written (read-only folder, a file where a folder is
        # expected, disk full): the file and the reason in one line, not a traceback
        print(f"prunepose: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prunepose: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
