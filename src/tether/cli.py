"""The ``tether`` command tree. Thin: parse arguments, load a config, call a stage.

A :class:`~tether.errors.TetherError` raised anywhere below a command is shown
as one line on stderr (``error: <file>:<line>: <what>``) and exits with code 2.
Heavy imports (torch, transformers) happen inside the commands, so ``--help``
is fast.
"""

from __future__ import annotations

import importlib
import json
import os
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
    # transformers' per-file progress bars drown the stage's own progress line
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


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
        summary = run_stage(module, config, overrides, extra)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary, not one per rank
            print_summary(summary)

    command.__doc__ = help
    app.command(name, help=help)(command)


@app.command()
def version() -> None:
    """Print Tether's version."""
    from tether import __version__

    typer.echo(__version__)


@app.command("run")
def run_command(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML: out, seed, stages, profiles.",
                                    dir_okay=False),
    overrides: list[str] | None = OverridesArg,
    profile: str | None = typer.Option(None, "--profile", "-p",
                                       help="Apply the file's named list of overrides first."),
    force: bool = typer.Option(False, "--force", help="Run every stage again, cached or not."),
) -> None:
    """Run a pipeline of stages from one YAML file; finished stages are cached."""
    from tether.pipeline import run_pipeline

    summaries = run_pipeline(pipeline, list(overrides or []), profile=profile, force=force,
                             log=lambda m: typer.echo(m, err=True))
    print_summary(summaries)


def demo_config() -> Path:
    """``configs/demo.yaml`` of the source checkout this package runs from."""
    path = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    if not path.is_file():
        raise TetherError(f"{path}: demo pipeline not found (tether demo runs from a source "
                          "checkout; use tether run PIPELINE.yaml elsewhere)")
    return path


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output directory of the run."),
    quick: bool = typer.Option(False, "--quick", help="A smoke run of every stage (under a minute)."),
    force: bool = typer.Option(False, "--force", help="Run every stage again, cached or not."),
) -> None:
    """The whole pipeline on the built-in world: world, pretrain, SFT, reward model."""
    from tether.pipeline import run_pipeline

    summaries = run_pipeline(demo_config(), [f"out={out}"], profile="quick" if quick else None,
                             force=force, log=lambda m: typer.echo(m, err=True))
    print_summary(summaries)


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
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
) -> None:
    """Accuracy (per category), calibration, length/format bias, gold accuracy on world data."""
    from tether.eval.rm import evaluate_dir

    print_summary(evaluate_dir(model, data, out, batch_size=batch_size, max_length=max_length,
                               n_bins=bins, device=device))


# ---- tether world: the built-in world (tether/world/ does the work)
world_app = _typer("The built-in world: corpora, prompt sets, probes, simulated raters.")
app.add_typer(world_app, name="world")


@world_app.command("build")
def world_build(
    out: Path = typer.Option(..., "--out", help="Output directory."),
    seed: int = typer.Option(0, "--seed", help="Seed of every draw (same seed, same bytes)."),
    size: str = typer.Option("default", "--size", help="small (seconds, for tests) or default."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rebuild over an existing world."),
) -> None:
    """Write pretrain.txt, sft.jsonl, prompt sets, probes/, labelled pairs and world.json."""
    from tether.config import build_config
    from tether.world.corpora import WorldBuildConfig, build_world

    cfg = build_config(WorldBuildConfig, {"run": {"out": str(out), "seed": seed,
                                                  "overwrite": overwrite}, "size": size},
                       "tether world build")
    print_summary(build_world(cfg))


@world_app.command("label")
def world_label(
    out: Path = typer.Option(..., "--out", help="Output JSONL file."),
    in_path: Path | None = typer.Option(None, "--in", help="Records with a prompt and "
                                        "responses (or response)."),
    rater: str = typer.Option("crowd", "--rater", help="Rater profile: expert, crowd, position."),
    kind: str = typer.Option("pairs", "--kind", help="pairs, rankings, ratings or thumbs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the rater's draws."),
    policy: Path | None = typer.Option(None, "--policy", help="Model directory to sample "
                                       "responses from (instead of --in)."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Prompts file for --policy."),
    n: int = typer.Option(4, "--n", min=1, help="Responses sampled per prompt (--policy)."),
) -> None:
    """Have a simulated rater label responses from a file or sampled from a policy."""
    from tether.errors import ConfigError
    from tether.world.label import label_file, label_records, policy_responses
    from tether.world.raters import Rater

    if (in_path is None) == (policy is None):
        raise ConfigError("tether world label: give either --in FILE or --policy DIR --prompts F")
    if in_path is not None:
        print_summary(label_file(in_path, out, rater, kind, seed))
        return
    if prompts is None:
        raise ConfigError("tether world label: --policy needs --prompts FILE")
    records = policy_responses(policy, prompts, n=n, seed=seed)
    labelled = label_records(records, Rater(rater, seed), kind, prompts, allow_empty=True)
    from tether.data.io import write_jsonl

    print_summary({"policy": str(policy), "out": str(out), "rater": rater, "kind": kind,
                   "prompts": len(records), "labels": write_jsonl(out, labelled)})


@world_app.command("styles")
def world_styles(
    rater: str = typer.Option("crowd", "--rater", help="Rater profile: expert, crowd, position."),
    prompts: int = typer.Option(400, "--prompts", min=1, help="Prompts sampled (train split)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Mean gold and rater utility of each response style, and each scorer's optimum."""
    from tether.world.optimum import style_optimum
    from tether.world.raters import get_profile

    print_summary(style_optimum(get_profile(rater), prompts, seed))


# ---- tether feedback: the labelling web app (tether/feedback/commands.py does the work)
feedback_app = _typer("Human feedback app: users, campaigns, serve, quality, export, audit.")
app.add_typer(feedback_app, name="feedback")
feedback_users_app = _typer("Annotator accounts (roles: admin, annotator, expert).")
feedback_app.add_typer(feedback_users_app, name="users")
DbOpt = typer.Option(None, "--db", help="Database URL or SQLite file (default: "
                     "$TETHER_FEEDBACK_DB or sqlite:///feedback.db).")
CampaignOpt = typer.Option(..., "--campaign", help="Campaign name or id.")
NamesOpt = typer.Option(None, "--annotators", help="Comma-separated user names "
                        "(default: everyone whose role fits the task).")


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@feedback_app.command("serve")
def feedback_serve(db: str | None = DbOpt,
                   host: str = typer.Option("127.0.0.1", "--host"),
                   port: int = typer.Option(8000, "--port"),
                   secret_env: str | None = typer.Option(
                       None, "--secret-env", help="Environment variable holding the "
                       "cookie-signing secret (default: one kept in the database)."),
                   secure_cookies: bool = typer.Option(
                       False, "--secure-cookies", help="Cookies only over HTTPS (behind a "
                       "TLS proxy).")) -> None:
    """Serve the labelling app (FastAPI + uvicorn)."""
    import os

    from tether.feedback.commands import serve

    serve(db, host, port, os.environ.get(secret_env) if secret_env else None, secure_cookies)


@feedback_users_app.command("add")
def feedback_users_add(name: str = typer.Argument(..., help="Login name."),
                       role: str = typer.Option("annotator", "--role"),
                       password_stdin: bool = typer.Option(
                           False, "--password-stdin", help="Read a password from stdin "
                           "(else: token login only)."),
                       db: str | None = DbOpt) -> None:
    """Add a user; prints the login token (shown once)."""
    import sys

    from tether.feedback.commands import add_user

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    print_summary(add_user(db, name, role, password))


@feedback_users_app.command("list")
def feedback_users_list(db: str | None = DbOpt) -> None:
    """List users and roles."""
    from tether.feedback.commands import list_users

    typer.echo(json.dumps(list_users(db), indent=2))


@feedback_app.command("import")
def feedback_import(
    name: str = typer.Option(..., "--name", help="Campaign name."),
    task_type: str = typer.Option(..., "--type", help="pairwise, ranking, likert, thumbs, "
                                  "redteam or factcheck."),
    data: str | None = typer.Option(None, "--data", help="Items: JSONL, Parquet or datasets dir."),
    guidelines: str | None = typer.Option(None, "--guidelines", help="Markdown file."),
    overlap: int = typer.Option(1, "--overlap", min=1, help="Judgements per item."),
    dimensions: str | None = typer.Option(None, "--dimensions", help="Likert: comma-separated."),
    annotators: str | None = NamesOpt,
    policy: str | None = typer.Option(None, "--policy", help="Policy dir: sample responses "
                                      "(with --prompts), or the red-team chat model."),
    prompts: str | None = typer.Option(None, "--prompts", help="Prompt set for --policy."),
    responses: int | None = typer.Option(None, "--responses", min=1, help="Samples per prompt."),
    seed: int = typer.Option(0, "--seed"),
    db: str | None = DbOpt,
) -> None:
    """Create a campaign from a file (or a policy's samples) and assign it; all or nothing."""
    from tether.feedback.commands import import_campaign

    print_summary(import_campaign(db, name, task_type, data, guidelines, overlap,
                                  _names(dimensions), _names(annotators), policy, prompts,
                                  responses, seed=seed))


@feedback_app.command("assign")
def feedback_assign(campaign: str = CampaignOpt, annotators: str | None = NamesOpt,
                    db: str | None = DbOpt) -> None:
    """Fill missing assignments after adding items or people."""
    from tether.feedback.commands import assign

    print_summary(assign(db, campaign, _names(annotators)))


@feedback_app.command("audit")
def feedback_audit(
    name: str = typer.Option(..., "--name", help="Campaign name."),
    top: int = typer.Option(50, "--top", min=1, help="How many highest-reward outputs."),
    samples: str | None = typer.Option(None, "--samples", help="An RL run's samples.jsonl."),
    reward_key: str | None = typer.Option(None, "--reward-key", help="Reward field of samples."),
    policy: str | None = typer.Option(None, "--policy", help="Policy dir to sample instead."),
    prompts: str | None = typer.Option(None, "--prompts", help="Prompt set for --policy."),
    reward_model: str | None = typer.Option(None, "--reward-model", help="RM dir for --policy."),
    responses: int = typer.Option(4, "--responses", min=1, help="Samples per prompt."),
    overlap: int = typer.Option(1, "--overlap", min=1),
    annotators: str | None = NamesOpt,
    db: str | None = DbOpt,
) -> None:
    """Human auditing: a campaign of a policy's highest-reward outputs to spot-check."""
    from tether.feedback.commands import audit_campaign

    print_summary(audit_campaign(db, name, top, samples, reward_key, policy, prompts,
                                 reward_model, responses, overlap,
                                 annotators=_names(annotators)))


@feedback_app.command("quality")
def feedback_quality(campaign: str = CampaignOpt, db: str | None = DbOpt) -> None:
    """Agreement (alpha, kappa), gold accuracy, position bias, audit bad-rate."""
    from tether.feedback.commands import quality

    print_summary(quality(db, campaign))


@feedback_app.command("progress")
def feedback_progress(db: str | None = DbOpt) -> None:
    """Every annotator's progress per campaign."""
    from tether.feedback.commands import progress

    typer.echo(json.dumps(progress(db), indent=2))


@feedback_app.command("export")
def feedback_export(
    campaign: str = CampaignOpt,
    out: Path = typer.Option(..., "--out", help="Output JSONL file."),
    kind: str | None = typer.Option(None, "--kind", help="pairs, rankings, ratings, binary, "
                                    "factcheck, redteam or votes (default: the task's)."),
    aggregate: bool = typer.Option(False, "--aggregate", help="One record per item "
                                   "(majority / mean / Borda) instead of every vote."),
    db: str | None = DbOpt,
) -> None:
    """Export judgements as training data (pairs feed tether rm and tether dpo)."""
    from tether.feedback.commands import export

    print_summary(export(db, campaign, str(out), kind, aggregate))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
