"""What every command shares: the console, loading an artifact, and turning errors into exit codes.

Bad input (a missing path, an unreachable ratio, a damaged checkpoint) exits with code 2 and a
one-line message naming the bad value; nothing is written in that case.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ..errors import HfModularError
from ..methods.modular.model_card import hub_id
from ..registry import get_method
from ..safe_loading import TOKENIZER_FILES

console = Console(stderr=True)
USAGE_ERROR = 2
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(USAGE_ERROR)


@contextlib.contextmanager
def clear_errors() -> Iterator[None]:
    """hf_modular's errors and unreadable files become a message and exit code 2, not a traceback."""
    try:
        yield
    except HfModularError as error:
        raise fail(str(error)) from error
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
        raise fail(f"{error.filename or error}: {error.strerror or 'not found'}") from error
    except OSError as error:  # transformers reports unreadable folders and unknown Hub repos as OSError
        raise fail(str(error).splitlines()[0]) from error


def with_clear_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with clear_errors():
            return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def existing_path(path: Path, what: str) -> Path:
    if not path.exists():
        raise fail(f"{what} {str(path)!r} does not exist")
    return path


def model_source(path: str, what: str) -> str:
    """``path`` when it is an existing folder or a Hub repo id ('org/name'), else exit 2 naming it."""
    if not Path(path).exists() and hub_id(path) is None:
        raise fail(f"{what} {path!r} is neither an existing folder nor a Hub repo id ('org/name')")
    return path


def output_folder(path: Path, what: str, inputs: dict[str, object]) -> Path:
    """``path`` as a folder to write, refused (exit 2) when it is an existing file or is, contains or
    lies inside one of ``inputs`` (``check_output_path``)."""
    from ..atomic_save import check_output_path

    if path.exists() and not path.is_dir():
        raise fail(f"{what} {str(path)!r} is an existing file, not a folder")
    return check_output_path(path, inputs)


def split_list(value: str | None) -> list[str] | None:
    """'2x,3x' -> ['2x', '3x']; None stays None (meaning: the default)."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise fail(f"{value!r} names nothing: give a comma-separated list such as '2x,3x'")
    return items


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer saved next to a model, or None when there is none. A local folder must hold
    tokenizer files: given a folder without them, transformers builds a default tokenizer of the
    model type (for T5, 104 tokens unrelated to the model's vocabulary), which would train silently."""
    from transformers import AutoTokenizer

    folder = Path(path)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        return None


def load_artifact(path: str, assemble: str | None = None, revision: str | None = None) -> Any:
    """A modular artifact from a folder or Hub id, optionally built sparse at one ratio."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    model_source(path, "artifact")
    config = AutoConfig.from_pretrained(path, revision=revision)
    if config.model_type not in {m.model_type for m in get_method("modular").models.values()}:
        raise fail(
            f"{path} is a {config.model_type!r} checkpoint, not a modular artifact: "
            "run 'hf-modular compress' on it first"
        )
    kwargs = {"assemble": assemble} if assemble else {}
    return AutoModelForSeq2SeqLM.from_pretrained(path, revision=revision, **kwargs).eval()


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
