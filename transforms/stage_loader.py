"""Build a pipeline's stages from their declarations (`StageSpec`, from the pipeline file).

`build_stage` imports the module a stage names and calls its factory with the stage's
`with:` options. The pipeline file's folder is first on the import path meanwhile (see
`stage_import_path`), so a stage module next to the file needs no install. Whatever goes
wrong (no such module, a syntax error, a module or a factory that raises, no stage returned)
is one ConfigError naming the pipeline file's line, the stage and the cause (the file and
line in the user's module), and the fix: never a traceback. A path in a stage's options is
relative to the pipeline file (`relative_to_pipeline`), so a pipeline and the files it names
move together.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from seam.errors import ConfigError, SeamError
from seam.keys import closest
from seam.transforms.model import Stage
from seam.transforms.pipeline import error_text
from seam.transforms.stages import BUILTIN

STAGE_HINT: Final = (
    f"use a built-in stage ({', '.join(BUILTIN)}) or your own as package.module:callable"
)


@dataclass(frozen=True)
class StageSpec:
    """One entry of a pipeline file's `stages`."""

    use: str  # a built-in name or package.module:callable
    options: dict[str, Any]  # `with:`, plain dicts and lists
    name: str | None = None
    where: str = "<pipeline>"  # file:line:column of the stage, for errors


_FOLDER: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "pipeline_folder", default=None
)


_DECLARED: contextvars.ContextVar[Any] = contextvars.ContextVar("declared_pipeline", default=None)


def declared_pipeline(*, required: bool = True) -> Any:
    """The declaration of the pipeline whose stages are being built (a
    `seam.transforms.declared.runtime.DeclaredPipeline`), for the built-in stages that run
    it. When the pipeline declares none: None, or a ConfigError when `required`."""
    found = _DECLARED.get()
    if found is None and required:
        raise ConfigError(
            "stage needs the pipeline's declaration, and the pipeline file declares none",
            hint="add 'tables:', 'entity:' and 'events:' to the pipeline file (see the "
            'transforms README\'s "Declared pipelines"), or remove the stage',
        )
    return found


def relative_to_pipeline(path: str | Path) -> Path:
    """`path` as a stage option means it: a relative path is relative to the folder of the
    pipeline file whose stages are being built (so a pipeline and the files it names move
    together), else to the current directory. Call it in a stage factory."""
    path = Path(path).expanduser()
    folder = _FOLDER.get()
    return path if path.is_absolute() or folder is None else folder / path


@contextlib.contextmanager
def stage_import_path(folder: Path | None) -> Iterator[None]:
    """`folder` first on sys.path for the duration (a script's folder is, in Python), then
    off again: it shadows nothing imported after the stages are built."""
    entry = str(folder) if folder is not None else None
    if entry is None or entry in sys.path:
        yield
        return
    sys.path.insert(0, entry)
    importlib.invalidate_caches()  # the folder's files may be newer than the finders' caches
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def load_callable(
    target: str, where: str, folder: Path | None, hint: str, *, user: bool = True
) -> Any:
    """Import `target` (package.module:callable) with `folder` first on the import path and
    return its callable: a ConfigError starting with `where` when the module cannot be
    imported or has no such callable. `user`: the module may be the user's (the error then
    says where it was looked for)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{where}: expected package.module:callable", hint=hint)
    with stage_import_path(folder):
        module = _import(module_name, where, folder if user else None)
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        guess = closest(attr, names)
        raise ConfigError(
            f"{where}: {module_name} ({_origin(module)}) has no callable '{attr}'"
            + (f" (did you mean '{guess}'?)" if guess else ""),
            hint=hint,
        )
    return factory


def build_stage(spec: StageSpec, folder: Path | None = None, declared: Any = None) -> Stage:
    """Import and call the stage factory `spec.use` names (`folder`, the pipeline file's,
    first on the import path; `declared`, the pipeline's DeclaredPipeline, for the stages
    that run it). Whatever goes wrong (no such module, a syntax error, an
    import or a factory that raises, not a stage) is one ConfigError naming the pipeline
    file, the stage and the cause, with a fix."""
    target = BUILTIN.get(spec.use, spec.use)
    where = f"{spec.where}: stage '{spec.use}'"
    attr = target.partition(":")[2]
    module_name = target.partition(":")[0]
    factory = load_callable(
        target,
        where,
        folder,
        f"name a function of {module_name} that takes the stage's `with:` options and "
        "returns a stage",
        user=spec.use not in BUILTIN,
    )
    module = sys.modules.get(module_name)
    token = _FOLDER.set(folder)
    declared_token = _DECLARED.set(declared)
    try:
        with stage_import_path(folder):  # a factory may import lazily
            stage = factory(spec.options)
    except SeamError as exc:  # the factory's own message, e.g. a bad option
        named = exc.message.startswith("stage '")  # a factory that names its stage, as seam's do
        raise ConfigError(
            f"{spec.where if named else where}: {exc.message}", hint=exc.hint
        ) from None
    except Exception as exc:
        at = _raised_at(exc, getattr(module, "__file__", None))
        raise ConfigError(
            f"{where}: the factory raised {error_text(exc)}{_at(at)}",
            hint=f"fix {attr}()"
            + (f" at {at[0]} line {at[1]}" if at else "")
            + f", or the stage's `with:` options in {spec.where.rsplit(':', 2)[0]}",
        ) from None
    finally:
        _FOLDER.reset(token)
        _DECLARED.reset(declared_token)
    if not callable(getattr(stage, "process", None)) or not isinstance(
        getattr(stage, "name", None), str
    ):
        raise ConfigError(
            f"{where}: {target} returned {type(stage).__name__}, not a stage",
            hint="return an object with a `name` (str) and a `process(item)` method "
            "(see seam.transforms.model.Stage)",
        )
    if spec.name:
        stage.name = spec.name
    return stage  # type: ignore[no-any-return]


def _import(module_name: str, where: str, folder: Path | None) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        place = f"{exc.filename}:{exc.lineno}" + (f":{exc.offset}" if exc.offset else "")
        raise ConfigError(
            f"{where}: {module_name} has a syntax error at {place}: {exc.msg}",
            hint=f"fix the syntax of {exc.filename} at line {exc.lineno}",
        ) from None
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            looked = f"next to the pipeline file ({folder}) and " if folder else ""
            raise ConfigError(
                f"{where}: cannot import {module_name}: no module named '{missing}' "
                f"(looked {looked}on the Python path)",
                hint=f"put {module_name.split('.')[0]}.py (or its package) next to the pipeline "
                "file, install it into seam's environment, or add its folder to PYTHONPATH "
                "(PYTHONPATH=/path/to/folder seam transform ...)",
            ) from None
        at = _raised_at(exc, None)
        raise ConfigError(
            f"{where}: cannot import {module_name}: it imports '{missing}', which is not "
            f"installed{_at(at)}",
            hint=f"install {missing.split('.')[0]} into seam's environment, or add the folder "
            "holding it to PYTHONPATH",
        ) from None
    except SeamError as exc:
        raise ConfigError(
            f"{where}: importing {module_name}: {exc.message}", hint=exc.hint
        ) from None
    except Exception as exc:  # anything the module's top-level code raised
        at = _raised_at(exc, None)
        raise ConfigError(
            f"{where}: importing {module_name} raised {error_text(exc)}{_at(at)}",
            hint="fix the module's top-level code"
            + (f" at {at[0]} line {at[1]}" if at else "")
            + "; it runs when the pipeline starts",
        ) from None


def _origin(module: ModuleType) -> str:
    return str(getattr(module, "__file__", None) or module.__name__)


def _raised_at(exc: BaseException, prefer: str | None) -> tuple[str, int] | None:
    """Where `exc` was raised in the user's code: the innermost frame in the file `prefer`,
    else the innermost frame outside the import machinery."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")
    ]
    if prefer:
        own = [f for f in frames if f.filename == prefer]
        frames = own or frames
    if not frames or frames[-1].lineno is None:
        return None
    return frames[-1].filename, frames[-1].lineno


def _at(at: tuple[str, int] | None) -> str:
    return f" (at {at[0]}:{at[1]})" if at else ""
