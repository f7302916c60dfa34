"""The ``iadet`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (a callable taking
the parsed ``argparse.Namespace`` and returning an exit status). Modules are imported lazily
only for the command being run, so ``iadet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import traceback

from iadet.errors import IadetError

# command name -> (module, one-line help). Keep alphabetical within groups.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("iadet.cli.train", "train a detector (baseline, Inverted Attention or an adversary)"),
    "eval": ("iadet.cli.evaluate", "evaluate a checkpoint (VOC07/VOC/COCO metrics), write result files"),
    "predict": ("iadet.cli.predict", "detect objects in images and draw them"),
    "data": ("iadet.cli.data", "built-in data (synth) and dataset validation (check)"),
    "voc-eval": ("iadet.cli.voc_eval", "PASCAL VOC devkit evaluation of detection files"),
    "compare": ("iadet.cli.compare", "train and compare methods over seeds, with statistics and plots"),
    "robustness": ("iadet.cli.robustness", "corruption benchmark (P/mPC/rPC) and occlusion sweep"),
    "visualize": ("iadet.cli.visualize", "attention heat-maps and the papers' figures"),
    "analyze": ("iadet.cli.analyze", "error analysis (TIDE, PR curves, confusion matrix) and part reliance"),
    "export": ("iadet.cli.export", "export a checkpoint's inference model (ONNX)"),
    "proposals": ("iadet.cli.proposals", "compute external proposals for Fast R-CNN"),
    "pretrain": (
        "iadet.cli.pretrain",
        "pretrain a backbone as a classifier on the built-in task (ImageNet stand-in)",
    ),
}


def _available_commands() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_text)
    return found


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iadet",
        description="Train object detectors robust to occlusion with Inverted Attention and A-Fast-RCNN.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = _available_commands()
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in commands.items():
        if name == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None or not hasattr(args, "func"):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        status = args.func(args)
    except IadetError as exc:
        print(f"iadet: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("iadet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line, the traceback on request
        if os.environ.get("IADET_DEBUG"):
            raise
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{os.path.basename(frame.filename)}:{frame.lineno}"
        print(
            f"iadet: internal error: {type(exc).__name__}: {exc} (at {where}; set IADET_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
