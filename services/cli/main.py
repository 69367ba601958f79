"""The one entry point: `casefeedback COMMAND`. Each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from services.common.errors import CasefeedbackError
from services.common.settings import load_settings

Command = Callable[[argparse.Namespace], int]
# Command name -> module that defines `add_arguments(parser)` and `run(args, settings) -> int`.
COMMANDS: dict[str, str] = {
    "up": "services.cli.up",
    "emit": "services.cli.emit",
    "run": "services.cli.run_service",
    "demo": "services.cli.demo",
    "replay": "services.cli.replay",
    "report": "services.cli.report",
    "indicators": "services.cli.indicators",
    "history": "services.cli.history",
    "cases": "services.cli.cases",
    "deadletters": "services.cli.deadletters",
    "migrate": "services.cli.migrate",
    "erase": "services.cli.erase",
    "retention": "services.cli.retention",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command's sub-parser."""
    import importlib

    parser = argparse.ArgumentParser(prog="casefeedback", description="Public-service feedback on Kafka.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
        sub.choices[name].set_defaults(module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the command, turn known errors into a message and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.module.run(args, load_settings())
        return code
    except CasefeedbackError as exc:
        print(f"casefeedback {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
