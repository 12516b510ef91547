"""The `hpstudy` command line: a table of commands, each with its arguments and one `run`."""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from typing import Any, ClassVar

import studies
from studies.cli import _print

SUMMARY_ROWS = 10  # best trials shown after a run


class Parser(argparse.ArgumentParser):
    """An argument parser that keeps its flags by the API parameter each sets (its `dest`), so
    that a `studies.ParameterError` can be printed with the flags the user typed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flags: dict[str, str] = {}  # set before argparse adds --help
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.option_strings:  # the long form: --output, not -o
            self.flags[action.dest] = max(action.option_strings, key=len)
        return action


class Command:
    """One subcommand: `name`, a one-line `help`, its arguments, and `run`."""

    name: ClassVar[str]
    help: ClassVar[str]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declares the command's arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Does the work; returns the exit status."""
        raise NotImplementedError


def add_storage_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The one `--storage` option of every command that opens a study database.

    Args:
        required: the flag or HPSTUDY_STORAGE must name the database (a joining worker); the
            command checks, since the variable may stand in for the flag. Otherwise the
            spec's storage (run) or the local SQLite file is the last fallback.
    """
    default = f"${studies.STORAGE_ENV}"
    if not required:
        default = f"the spec's, else ${studies.STORAGE_ENV}, else {studies.DEFAULT_STORAGE}"
    parser.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help=f"the study database: a SQLAlchemy URL, or env:NAME for the URL in environment "
        f"variable NAME (keeps a password out of ps and shell history; default: {default})",
    )


class Train(Command):
    name = "train"
    help = "train one config file (.toml/.json/.yaml) and report dev (and test) results"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", help="a TrainConfig file, e.g. one written by export")
        parser.add_argument(
            "--test", action="store_true", help="also report the test-set loss and accuracy"
        )
        parser.add_argument(
            "--set",
            dest="overrides",
            metavar="KEY=VALUE",
            action="append",
            default=[],
            help="override a field, e.g. --set epochs=3 (TOML value syntax)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            help="torch CPU threads (default: those of the exported trial, else torch's choice)",
        )
        parser.add_argument(
            "--weights",
            metavar="FILE.pt",
            help="score these trained weights (hpstudy export --weights) instead of training",
        )

    def run(self, args: argparse.Namespace) -> int:
        studies.train(
            args.config,
            test=args.test,
            overrides=parse_set(args.overrides),
            threads=args.threads,
            weights=args.weights,
        )
        return 0


class Fetch(Command):
    name = "fetch"
    help = "download a built-in data set (mnist) into the data folder"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dataset", choices=["mnist"])
        parser.add_argument("--data-dir", default="data", help="where to keep it (default: data)")

    def run(self, args: argparse.Namespace) -> int:
        print(f"MNIST is in {studies.fetch(args.dataset, data_dir=args.data_dir)}")
        return 0


class Run(Command):
    name = "run"
    help = "create or resume a study from a spec (built-in name or TOML path) and run it"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", help="a built-in spec (hpstudy specs) or a .toml path")
        parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
        add_storage_option(parser)
        parser.add_argument("--name", help="override the spec's study name")
        parser.add_argument(
            "--n-trials", type=int, help="the study's total trial budget (overrides the spec)"
        )
        parser.add_argument("--timeout", type=float, help="stop starting trials after SECONDS")
        parser.add_argument(
            "--seed", type=int, help="the sampler's and the trials' seed (overrides the spec)"
        )
        parser.add_argument(
            "--set",
            dest="train_fields",
            metavar="KEY=VALUE",
            action="append",
            default=[],
            help="override a [train] field for every trial, e.g. --set epochs=5",
        )
        parser.add_argument(
            "--warm-start",
            metavar="SOURCE",
            action="append",
            default=[],
            help="try known configurations first, once per study: an exported config file, "
            "or a study as NAME@URL (its best trials); repeatable",
        )
        parser.add_argument(
            "--no-priors",
            dest="priors",
            action="store_const",
            const=False,
            default=None,
            help="do not start from the best trials of earlier studies of the same task in "
            "the storage (sets study.priors = false)",
        )
        _add_heartbeat_arguments(parser, "10, kept with the study", "60, kept with the study")
        parser.add_argument(
            "--ray",
            nargs="?",
            const=True,
            default=None,
            metavar="ADDRESS",
            help="run the workers as Ray tasks (pip install 'hpstudy[ray]'): alone, on a Ray "
            "started on this machine; with an address (auto, ray://head:10001), on that "
            "cluster (default: the spec's study.ray, else local processes)",
        )
        parser.add_argument(
            "--cpus-per-worker",
            type=float,
            metavar="N",
            help="CPUs (and torch threads) per Ray worker (default: the spec's, else 1)",
        )
        parser.add_argument(
            "--gpus-per-worker",
            type=float,
            metavar="N",
            help="GPUs per Ray worker; 0.25 packs four on one device (default: the spec's, else 0)",
        )

    def run(self, args: argparse.Namespace) -> int:
        _print.warn_password_in_argv(args.storage)
        spec = studies.spec_of(
            args.spec,
            train_fields=parse_set(args.train_fields),
            given_as=_flags_given(args),
            storage=args.storage,
            name=args.name,
            n_trials=args.n_trials,
            timeout=args.timeout,
            seed=args.seed,
            priors=args.priors,
        )
        console = _print.console()
        studies.run(
            spec,
            workers=args.workers,
            echo=_print.echo_to(console),
            live=sys.stdout.isatty(),
            heartbeat=args.heartbeat,
            grace=args.grace,
            warm_start=args.warm_start,
            ray=args.ray,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
        )
        best = studies.trials(spec.name, storage=spec.storage, limit=SUMMARY_ROWS)
        console.print(_print.trials_table(best, title=f"best trials of '{spec.name}'"))
        pick = None
        if best.several:  # the second objective's value on the front's first trial
            front = [row for row in best.rows if row.front and len(row.values) > 1]
            name, value = best.objectives[1], front[0].values[1] if front else None
            pick = f"{name}<={value:g}" if value is not None else f"{name}<=NUMBER"
        steps = _print.next_steps(spec.name, spec.storage, pick=pick)
        console.print(steps, highlight=False, soft_wrap=True)
        return 0


class Plan(Command):
    name = "plan"
    help = "time a probe epoch here and say how many trials and epochs fit in a budget"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", help="a built-in spec (hpstudy specs) or a .toml path")
        parser.add_argument(
            "--budget", required=True, help="wall time, e.g. 30m, 1.5h or 900 (seconds)"
        )
        parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    def run(self, args: argparse.Namespace) -> int:
        spec = studies.spec_of(args.spec)
        for line in studies.plan(spec, budget=args.budget, workers=args.workers).lines(spec):
            print(line)
        return 0


class LRRangeCommand(Command):
    name = "lr-range"
    help = "learning-rate range test per optimiser: loss against lr, and bounds to search"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", help="a built-in spec (hpstudy specs) or a .toml path")
        parser.add_argument(
            "-o", "--output", default="lr-range.png", help="the picture (default: lr-range.png)"
        )
        parser.add_argument("--steps", type=int, default=300, help="steps per optimiser")

    def run(self, args: argparse.Namespace) -> int:
        studies.lr_range(args.spec, steps=args.steps, output=args.output)
        print(f"wrote {args.output}; to search inside these bounds, set auto = true in [space.lr]")
        return 0


class Ablate(Command):
    name = "ablate"
    help = "run every combination of categorical factors with several seeds; a table with CIs"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", help="a built-in spec (hpstudy specs) or a .toml path")
        parser.add_argument(
            "--factors", required=True, help="categorical parameters, e.g. init,activation"
        )
        parser.add_argument("--repeats", type=int, default=5, help="seeds per cell (default 5)")
        parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
        parser.add_argument("-o", "--output", help="also draw the table (.png) here")
        add_storage_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        factors = [f.strip() for f in args.factors.split(",") if f.strip()]
        console = _print.console()
        ablation = studies.ablate(
            args.spec,
            factors=factors,
            repeats=args.repeats,
            workers=args.workers,
            storage=args.storage,
            output=args.output,
            echo=_print.echo_to(console),
        )
        console.print(_print.ablation_table(ablation))
        best = ", ".join(map(str, ablation.rows[0].cell))
        console.print(
            f"{len(ablation.worse)} of {len(ablation.rows) - 1} cells are significantly worse "
            f"than the best ({best}) by a paired t-test over seeds, Holm-corrected at 5%; kept "
            f"with the study (hpstudy report {ablation.study})",
            highlight=False,
        )
        return 0


class LearningCurve(Command):
    name = "learning-curve"
    help = "train a trial's config on growing shares of its training data; read bias/variance"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study")
        add_storage_option(parser)
        parser.add_argument("--trial", type=int, help="trial N instead of the best")
        parser.add_argument(
            "--sizes",
            default="0.05,0.1,0.2,0.4,0.7,1.0",
            help="shares of the training split, in (0, 1] (default 0.05,0.1,0.2,0.4,0.7,1.0)",
        )
        parser.add_argument("--repeats", type=int, default=3, help="seeds per size (default 3)")
        parser.add_argument("-o", "--output", help="also write the picture (.png) here")

    def run(self, args: argparse.Namespace) -> int:
        try:
            sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
        except ValueError:
            raise studies.StudyError(
                f"--sizes takes shares such as 0.1,0.5,1.0; got '{args.sizes}'"
            ) from None
        studies.learning_curve(
            args.study,
            storage=args.storage,
            trial=args.trial,
            sizes=sizes,
            repeats=args.repeats,
            output=args.output,
        )
        return 0


class Worker(Command):
    name = "worker"
    help = "join an existing study as one more worker (from any machine reaching its database)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study", help="the study's name")
        add_storage_option(parser, required=True)
        parser.add_argument("--index", type=int, default=0, help="seeds this worker's sampler")
        parser.add_argument("--timeout", type=float, help="stop starting trials after SECONDS")
        _add_heartbeat_arguments(parser, "the study's", "the study's")

    def run(self, args: argparse.Namespace) -> int:
        _print.warn_password_in_argv(args.storage)
        # This process exists to run the worker: its log lines, signals and the run that
        # started it (if one did) are the worker's.
        with studies.worker_process() as stop:
            summary = studies.worker(
                args.study,
                storage=args.storage,
                index=args.index,
                timeout=args.timeout,
                heartbeat=args.heartbeat,
                grace=args.grace,
                stop=stop,
            )
        print(summary.line(args.index), flush=True)
        return 0


def _add_heartbeat_arguments(
    parser: argparse.ArgumentParser, heartbeat_default: str, grace_default: str
) -> None:
    parser.add_argument(
        "--heartbeat",
        type=int,
        metavar="SECONDS",
        help=f"a running trial's heartbeat interval (default: {heartbeat_default})",
    )
    parser.add_argument(
        "--grace",
        type=int,
        metavar="SECONDS",
        help="silence after which a running trial counts as dead and is re-queued "
        f"(default: {grace_default})",
    )


class Copy(Command):
    name = "copy"
    help = "copy a study with its trials, epochs and checkpoints to another database"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study")
        parser.add_argument(
            "--from", dest="source", required=True, help="its database URL, e.g. sqlite:///a.db"
        )
        parser.add_argument(
            "--to", dest="target", required=True, help="the new database URL, e.g. postgresql://..."
        )

    def run(self, args: argparse.Namespace) -> int:
        report = studies.copy(args.study, source=args.source, target=args.target)
        rows = ", ".join(f"{n} {table}" for table, n in report.rows.items())
        print(
            f"copied '{args.study}' to {studies.redact(args.target)}: {report.trials} trials; "
            f"rows: {rows}"
        )
        return 0


class Status(Command):
    name = "status"
    help = "show a study's progress, best value and best trials"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study")
        add_storage_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        status = studies.status(args.study, storage=args.storage)
        console = _print.console()
        console.print(_print.status_text(status), highlight=False)
        if status.counts.complete:
            console.print(_print.trials_table(status.best, title="best trials"))
        return 0


class Studies(Command):
    name = "studies"
    help = "list the studies in a database"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_storage_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        storage, rows = studies.list_studies(args.storage)
        console = _print.console()
        if not rows:
            console.print(f"no studies in {storage}", highlight=False)
        else:
            console.print(_print.studies_table(storage, rows))
        return 0


class Trials(Command):
    name = "trials"
    help = "list a study's trials with their values, stop reasons and diagnoses"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study")
        add_storage_option(parser)
        parser.add_argument("--limit", type=int, default=None, help="show at most N trials")

    def run(self, args: argparse.Namespace) -> int:
        rows = studies.trials(args.study, storage=args.storage, limit=args.limit)
        _print.console().print(_print.trials_table(rows, title=f"trials of '{args.study}'"))
        return 0


class Specs(Command):
    name = "specs"
    help = "list the built-in study specs"

    def run(self, args: argparse.Namespace) -> int:
        _print.console().print(_print.specs_table(studies.specs()))
        return 0


class Dashboard(Command):
    name = "dashboard"
    help = "browse the studies in optuna-dashboard, with learning curves and diagnoses"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_storage_option(parser)
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="address to listen on (default 127.0.0.1: this machine only; the dashboard "
            "has no login)",
        )
        parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")

    def run(self, args: argparse.Namespace) -> int:
        studies.dashboard(args.storage, host=args.host, port=args.port)
        return 0


class Export(Command):
    name = "export"
    help = "write the best trial's complete config plus provenance, ready for hpstudy train"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study")
        add_storage_option(parser)
        parser.add_argument(
            "-o",
            "--output",
            default="best.toml",
            help="the file, .toml, .json or .yaml (default: best.toml)",
        )
        parser.add_argument("--trial", type=int, help="export trial N instead of the best")
        parser.add_argument(
            "--pick",
            metavar="CONDITION",
            help="several objectives: the best first objective among the Pareto front's "
            'trials that meet CONDITION, e.g. "params<=50000"',
        )
        parser.add_argument(
            "--weights",
            metavar="FILE.pt",
            help="also write the trial's trained best-epoch weights (kept for the best trials; "
            "a k-fold trial's: its networks' ensemble)",
        )
        parser.add_argument(
            "--refit",
            choices=("ensemble", "retrain"),
            default=None,
            help="a trial of several networks (folds, repeats): export their ensemble "
            "(hpstudy train trains them again and averages their predictions; the default) or "
            "one network retrained on the whole training split",
        )

    def run(self, args: argparse.Namespace) -> int:
        studies.export(
            args.study,
            storage=args.storage,
            output=args.output,
            trial=args.trial,
            pick=args.pick,
            weights=args.weights,
            echo=print,
            **({} if args.refit is None else {"refit": args.refit}),
        )
        return 0


class Reproduce(Command):
    name = "reproduce"
    help = "train a trial again from its stored config and seed; compare curves, report test"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study")
        add_storage_option(parser)
        parser.add_argument("--trial", type=int, help="reproduce trial N instead of the best")

    def run(self, args: argparse.Namespace) -> int:
        outcome = studies.reproduce(args.study, storage=args.storage, trial=args.trial)
        return 0 if outcome.comparison.equal else 1


class Report(Command):
    name = "report"
    help = "write one self-contained HTML page about a study (opens offline)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study")
        add_storage_option(parser)
        parser.add_argument(
            "-o", "--output", default="report.html", help="the page (default: report.html)"
        )

    def run(self, args: argparse.Namespace) -> int:
        print(f"wrote {studies.report(args.study, storage=args.storage, output=args.output)}")
        return 0


COMMANDS: list[Command] = [
    Run(),
    Plan(),
    LRRangeCommand(),
    Ablate(),
    LearningCurve(),
    Worker(),
    Copy(),
    Status(),
    Studies(),
    Trials(),
    Specs(),
    Train(),
    Fetch(),
    Dashboard(),
    Export(),
    Reproduce(),
    Report(),
]


def _flags_given(args: argparse.Namespace) -> str:
    """The spec-changing flags of `hpstudy run`, as typed (a password shown as ***)."""
    flags = [
        f"--{flag} {studies.redact(value) if flag == 'storage' else value}"
        for flag, value in (
            ("storage", args.storage),
            ("name", args.name),
            ("n-trials", args.n_trials),
            ("seed", args.seed),
            ("timeout", args.timeout),
        )
        if value is not None
    ]
    if args.priors is False:
        flags.append("--no-priors")
    return " ".join(flags + [f"--set {pair}" for pair in args.train_fields])


def parse_set(pairs: Sequence[str]) -> dict[str, Any]:
    """`--set` pairs, `["epochs=3", "lr=0.1"]` -> {"epochs": 3, "lr": 0.1}, in TOML syntax.

    Raises:
        StudyError: for a pair without "=".
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise studies.StudyError(f"--set takes KEY=VALUE, got '{pair}'")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare word is a string: --set optimizer=adam
    return out


def build_parser(commands: Sequence[Command] = COMMANDS) -> Parser:
    parser = Parser(
        prog="hpstudy",
        description="Hyperparameter studies for PyTorch networks, stored in one database.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        command_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(command_parser)
        command_parser.set_defaults(handler=command, flags=command_parser.flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; user errors print one clear message and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler.run(args)
    except studies.UserError as exc:
        # The API names its parameters; the user typed this command's flags.
        message = exc.worded(args.flags) if isinstance(exc, studies.ParameterError) else exc
        print(f"hpstudy {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hpstudy {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
