"""The `pawtf` command: thin argparse subcommands over the library; defaults come from `pawtf.config`.

One module per family of commands (`training`, `scoring`, `explaining`, `features`, `serving`) over shared `options`; this
module builds the parser (only the part asked for: ``--help`` answers at once) and runs a command with
pawtf's warnings on standard error, TensorFlow's start-up chatter filtered and known errors reported
in one line instead of a traceback.

>>> build_parser("train").parse_args(["train", "--out", "runs/x", "--epochs", "3"]).epochs
3
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import sys

from pawtf.cli import explaining, features, scoring, serving, training
from pawtf.cli.options import SUMMARIES

__all__ = ["EPILOG", "SUBCOMMANDS", "SUMMARIES", "WITHOUT_TENSORFLOW", "Parser", "build_parser", "main"]


class Parser(argparse.ArgumentParser):
    """argparse without abbreviations (``--budget-minute`` is an error, never ``--budget-minutes``), whose
    error for an unknown option names the closest options of the command given.

    >>> p = Parser(prog="demo"); _ = p.add_argument("--budget-minutes")
    >>> p.suggestions(["--budget-minute", "x"])
    ['--budget-minute: did you mean --budget-minutes?']
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def suggestions(self, unknown: list[str], namespace=None) -> list[str]:
        """For each unknown option, the closest option of this parser (or of the subcommand chosen)."""
        parsers = [self]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and namespace is not None:
                chosen = getattr(namespace, action.dest, None)
                if chosen in action.choices:
                    parsers.append(action.choices[chosen])
        known = [o for p in parsers for a in p._actions for o in a.option_strings]
        hints = []
        for arg in unknown:
            if arg.startswith("-"):
                close = difflib.get_close_matches(arg.split("=")[0], known, n=1, cutoff=0.6)
                if close:
                    hints.append(f"{arg}: did you mean {close[0]}?")
        return hints

    def parse_args(self, args=None, namespace=None):
        namespace, unknown = self.parse_known_args(args, namespace)
        if unknown:
            hints = self.suggestions(unknown, namespace)
            self.error("unrecognized arguments: " + " ".join(unknown) + "".join("\n  " + h for h in hints))
        return namespace


#: Each subcommand's one line in ``pawtf --help`` (and the head of its own help).


# One entry per subcommand (its name in SUMMARIES): a function adding its parser, which sets `func`.
SUBCOMMANDS = {"demo-data": training.add_demo_data, "train": training.add_train, "cv": training.add_cv,
               "baseline": training.add_baseline, "export": scoring.add_export, "predict": scoring.add_predict,
               "rank": scoring.add_rank, "crop": scoring.add_crop,
               "sensitivity": scoring.add_sensitivity, "explain": explaining.add_explain,
               "analyze-metadata": training.add_analyze_metadata, "features": features.add_features,
               "dedupe": features.add_dedupe, "ensemble": training.add_ensemble, "distill": training.add_distill,
               "app": serving.add_app}

#: Commands that never load TensorFlow.
WITHOUT_TENSORFLOW = ("demo-data",)

EPILOG = """The hyperparameter search (KerasTuner) is its own command: python -m tuning.search --help.
Each command has its own help: pawtf COMMAND --help."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``pawtf`` parser, with every subcommand's options, or only those of `command` (the others
    keep their one line): building a subcommand's options imports what its defaults come from, so
    ``pawtf --help`` and ``pawtf CMD --help`` build only what they show and answer at once."""
    parser = Parser(prog="pawtf", description=__doc__, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add in SUBCOMMANDS.items():
        if command is None or command == name:
            add(sub)
        else:
            sub.add_parser(name, help=SUMMARIES[name])
    return parser


def _command_in(argv: list[str]) -> str:
    """The subcommand named in `argv` ("" when none is)."""
    return next((a for a in argv if not a.startswith("-")), "")


@contextlib.contextmanager
def _library_log_to_stderr():
    """While a command runs, pawtf's library warnings (e.g. "no metadata CSV given") reach the user as
    plain lines on standard error, whatever handlers TensorFlow's absl logging has put on the root logger
    (with those, Python's own fallback never prints them)."""
    log = logging.getLogger("pawtf")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if hasattr(sys.stdout, "reconfigure"):  # file names that are not UTF-8 are printed as their own bytes
        sys.stdout.reconfigure(errors="surrogateescape")
    args = build_parser(_command_in(argv)).parse_args(argv)
    from pawtf.data.schema import DataError
    from pawtf.data.split import FoldError
    from pawtf.models.backbones import WeightsUnavailableError
    from pawtf.runs import RunExistsError

    if args.command not in WITHOUT_TENSORFLOW:
        from pawtf.native_log import import_tensorflow

        import_tensorflow()  # now, without its start-up chatter, before any module imports it loudly
    try:
        with _library_log_to_stderr():
            args.func(args)
    except DataError as err:
        hint = ("\nRe-run with --skip-bad to drop the bad rows and continue." if err.droppable
                and hasattr(args, "skip_bad") else "")
        print(f"pawtf: error: {err}{hint}", file=sys.stderr)
        return 2
    except (FoldError, WeightsUnavailableError, RunExistsError, FileNotFoundError) as err:
        print(f"pawtf: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
