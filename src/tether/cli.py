"""The ``tether`` command tree. Thin: parse arguments, load a config, call a stage.

A :class:`~tether.errors.TetherError` raised anywhere below a command is shown
as one line on stderr (``error: <file>:<line>: <what>``) and exits with code 2.
Heavy imports (torch, transformers) happen inside the commands, so ``--help``
is fast.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from tether.errors import TetherError


class _Group(TyperGroup):
    """Turns a :class:`TetherError` into one line on stderr and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TetherError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None


def _typer(help: str) -> typer.Typer:
    return typer.Typer(cls=_Group, help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None)


app = _typer("Tether: RLHF that shows whether alignment actually worked.")


@app.callback()
def _root() -> None:
    """Tether: RLHF that shows whether alignment actually worked."""


def print_summary(summary: dict[str, Any]) -> None:
    """Print a stage's final figures as JSON on stdout."""
    typer.echo(json.dumps(summary, indent=2, default=str))


def run_stage(module: str, config: Path | None, overrides: list[str] | None,
              extra: list[str] | None = None) -> dict[str, Any]:
    """Load ``tether.stages.<module>``'s ``Config`` from file + overrides and run it."""
    from tether.config import load_config

    mod = importlib.import_module(f"tether.stages.{module}")
    cfg = load_config(mod.Config, config, list(overrides or []) + list(extra or []))
    return mod.run(cfg)


ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file of the stage.",
                         dir_okay=False)
OverridesArg = typer.Argument(None, help="key=value overrides, e.g. optim.lr=3e-4",
                              show_default=False)
ResumeOpt = typer.Option(False, "--resume", help="Continue from the newest checkpoint.")


def _add_stage(name: str, module: str, help: str) -> None:
    """Register ``tether NAME --config F [key=value ...]`` for a stage module."""

    def command(config: Path | None = ConfigOpt, overrides: list[str] | None = OverridesArg,
                resume: bool = ResumeOpt) -> None:
        extra = ["run.resume=true"] if resume else []
        print_summary(run_stage(module, config, overrides, extra))

    command.__doc__ = help
    app.command(name, help=help)(command)


@app.command()
def version() -> None:
    """Print Tether's version."""
    from tether import __version__

    typer.echo(__version__)


# Stages: one line each, added as each stage exists.
STAGES: list[tuple[str, str, str]] = [
    ("pretrain", "pretrain", "Pretrain a causal LM on plain text (tiny model from scratch, or continue one)."),
    ("sft", "sft", "Supervised fine-tuning on chats or prompt/completion pairs (loss on responses)."),
]

for _name, _module, _help in STAGES:
    _add_stage(_name, _module, _help)


class _RmGroup(_Group):
    """``tether rm --config F ...`` is ``tether rm train --config F ...``; ``eval`` evaluates."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] != "--help":
            args = ["train", *args]
        return super().parse_args(ctx, args)


rm_app = typer.Typer(cls=_RmGroup, no_args_is_help=True, add_completion=False,
                     pretty_exceptions_enable=False, rich_markup_mode=None,
                     help="Reward model: train (tether rm --config F [key=value ...]) or evaluate.")
app.add_typer(rm_app, name="rm")


@rm_app.command("train")
def rm_train(config: Path | None = ConfigOpt, overrides: list[str] | None = OverridesArg,
             resume: bool = ResumeOpt) -> None:
    """Train a reward model (Bradley-Terry on pairs; rankings, ratings, thumbs as pairs)."""
    print_summary(run_stage("reward", config, overrides, ["run.resume=true"] if resume else []))


@rm_app.command("eval")
def rm_eval(
    model: Path = typer.Option(..., "--model", help="Reward model or ensemble directory."),
    data: Path = typer.Option(..., "--data", help="Pairs, rankings, ratings or thumbs file."),
    out: Path | None = typer.Option(None, "--out", help="Output dir (default: eval/ beside model)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    max_length: int = typer.Option(512, "--max-length", min=8),
    bins: int = typer.Option(10, "--bins", min=1, help="Calibration bins."),
) -> None:
    """Accuracy (per category), calibration, length/format bias, gold accuracy on world data."""
    from tether.eval.rm import evaluate_dir

    print_summary(evaluate_dir(model, data, out, batch_size=batch_size, max_length=max_length,
                               n_bins=bins))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
