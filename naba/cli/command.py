"""What every `naba` subcommand is made of: dataclasses of arguments, parsed by `HfArgumentParser`, and a
function that runs the library on them.

A command's options are the fields of its dataclasses. `HfArgumentParser` derives each option from its field:
the flag from the name (`max_length` is `--max_length` and `--max-length`), the type, choices (`Literal`),
`nargs="+"` (`list[...]`) and the default from the annotation, and any other argparse keyword (`help`,
`choices`, `metavar`) from `metadata`. `NabaArgumentParser` reads three more things from `metadata`:

- `type` and `nargs`, kept as given where `HfArgumentParser` would derive its own (`positive_int`,
  `nargs="*"`);
- `flag: True` on a `bool` field: a plain switch (`action="store_true"`), not `HfArgumentParser`'s `--x [X]`;
- `exclusive: NAME`: the options naming the same group are mutually exclusive.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from transformers import HfArgumentParser

# The metadata keys `NabaArgumentParser` handles itself rather than passing to `add_argument`.
_OWN_KEYS = ("type", "nargs", "flag", "exclusive")


class UsageError(Exception):
    """Arguments that parse but cannot be run (a bad combination, an output that cannot be resumed): the
    command stops with argparse's usage message and exit code 2, as for arguments that do not parse."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (sizes, summary sentences), as the service requires."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def ratio(text: str) -> float:
    """argparse type of a share such as `--summary-ratio`: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return value


class _Adding:
    """The argparse container `HfArgumentParser` adds a field's option to, adding it as the field says: the
    keywords of `forced` over those derived, and the dashed spelling first where `dashes_first`."""

    def __init__(self, target: Any, forced: dict[str, Any], dashes_first: bool) -> None:
        self.target, self.forced, self.dashes_first = target, forced, dashes_first

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        if self.dashes_first:  # the dest stays the field's name: argparse turns dashes into underscores
            names = tuple(sorted(names, key=lambda name: "_" in name))
        return self.target.add_argument(*names, **{**kwargs, **self.forced})


class NabaArgumentParser(HfArgumentParser):
    """`HfArgumentParser` with the metadata keys of this module's docstring. Every option has both spellings;
    help and messages name Naba's own options by their dashed one (`--max-length`), as its documentation
    does, and transformers' by their underscored one (`--num_train_epochs`), as transformers' does."""

    def _add_dataclass_arguments(self, dtype: Any) -> None:
        self.naba_dashes_first = dtype.__module__.startswith("naba.")
        super()._add_dataclass_arguments(dtype)

    @staticmethod
    def _parse_dataclass_field(parser: Any, field: dataclasses.Field[Any]) -> None:
        dashes_first = getattr(parser, "naba_dashes_first", False)
        own = {key: field.metadata[key] for key in _OWN_KEYS if key in field.metadata}
        if "exclusive" in own:
            groups = vars(parser).setdefault("naba_exclusive_groups", {})
            if own["exclusive"] not in groups:
                groups[own["exclusive"]] = parser.add_mutually_exclusive_group()
            parser = groups[own["exclusive"]]
        if own.get("flag"):
            names = [f"--{field.name}", *([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])]
            _Adding(parser, {}, dashes_first).add_argument(
                *names, action="store_true", help=field.metadata.get("help")
            )
            return
        plain = copy.copy(field)
        plain.metadata = types.MappingProxyType(
            {k: v for k, v in field.metadata.items() if k not in _OWN_KEYS}
        )
        forced: dict[str, Any] = {key: own[key] for key in ("type", "nargs") if key in own}
        # `HfArgumentParser` only calls `add_argument` on the container it is given.
        adding = cast(argparse.ArgumentParser, _Adding(parser, forced, dashes_first))
        HfArgumentParser._parse_dataclass_field(adding, plain)

    def set_option(self, dest: str, **attributes: Any) -> None:
        """Change, for one command, the option that stores `dest`: its `help`, `choices`, `required`, ..."""
        actions = [action for action in self._actions if action.dest == dest]
        if not actions:
            raise KeyError(f"no option stores {dest!r}")
        for action in actions:
            for name, value in attributes.items():
                setattr(action, name, value)


@dataclass(frozen=True)
class Command:
    """One `naba` subcommand: the dataclasses its arguments parse into and the function that runs on them.

    `run` takes one instance of each of `arguments`, in order, and returns the exit code (None: 0); it raises
    `UsageError` for arguments it refuses. `configure` adjusts the parser before it parses, e.g. defaults read
    from the settings (`parser.set_defaults(...)`, at parse time) or one command's own help for a shared
    option. `hf_script` parses as transformers' example scripts do: a lone `.json` argument holds every
    argument, and a `<script>.args` file beside the running script is read before the command line.
    """

    name: str
    arguments: tuple[type, ...]
    run: Callable[..., int | None]
    description: str | None = None
    epilog: str | None = None
    formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter
    configure: Callable[[NabaArgumentParser], None] | None = None
    hf_script: bool = False

    def parser(self) -> NabaArgumentParser:
        # The stub asks for `DataClassType` (a NewType over Any) and so refuses a plain tuple of dataclasses.
        parser = NabaArgumentParser(
            self.arguments,  # type: ignore[arg-type]
            prog=f"naba {self.name}",
            description=self.description,
            epilog=self.epilog,
            formatter_class=self.formatter_class,
        )
        if self.configure is not None:
            self.configure(parser)
        return parser

    def parse(self, argv: Sequence[str], parser: NabaArgumentParser | None = None) -> tuple[Any, ...]:
        """The command's dataclasses from its command line; argparse's exit 2 for bad arguments."""
        parser = parser or self.parser()
        if self.hf_script and len(argv) == 1 and argv[0].endswith(".json"):
            return tuple(parser.parse_json_file(argv[0]))
        *parsed, unknown = parser.parse_args_into_dataclasses(
            list(argv), return_remaining_strings=True, look_for_args_file=self.hf_script
        )
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        return tuple(parsed)

    def __call__(self, argv: Sequence[str]) -> int | None:
        """Parse `argv` and run the command: its exit code, None for 0."""
        parser = self.parser()
        parsed = self.parse(argv, parser)
        try:
            return self.run(*parsed)
        except UsageError as exc:
            parser.error(exc.message)
