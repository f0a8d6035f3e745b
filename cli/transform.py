"""`seam transform ...`: run pipelines of raw change events to domain events.

    seam transform check PIPELINE          load the pipeline file and build its stages
    seam transform check-schemas [DIR]     schemas valid, each version compatible with the last
    seam transform schemas PIPELINE        a declared pipeline's schemas (--write: as files)
    seam transform run PIPELINE            run a worker (exactly once unless --at-least-once)
    seam transform replay PIPELINE         rebuild the outputs from offset 0

Heavy modules (confluent_kafka, the stages) are imported inside the commands.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from seam.cli.context import settings
from seam.cli.interact import confirm
from seam.cli.render import OUTPUT, Output, print_json, print_mapping, print_table

if TYPE_CHECKING:
    from seam.transforms.pipeline_file import PipelineSpec
    from seam.transforms.progress import Progress

app = typer.Typer(
    help="Turn raw change events into clean, validated domain events (exactly once).",
    no_args_is_help=True,
)

PIPELINE = typer.Argument(..., help="Pipeline file (YAML), e.g. pipelines/orders.yaml.")


@app.command("check")
def check(ctx: typer.Context, pipeline: Path = PIPELINE, output: Output = OUTPUT) -> None:
    """Load the pipeline file and build every stage (imports, options, schemas); with
    column_types: source, read the inputs' column types."""
    from seam.transforms.column_types import load_column_types
    from seam.transforms.fast_path import load_fast_path, load_split_path
    from seam.transforms.pipeline_file import load_pipeline

    spec = load_pipeline(pipeline)
    built = spec.build()
    fast = load_fast_path(spec, built)  # a declared one must load; it may decline (None)
    split = load_split_path(spec, built) if fast is None else None
    types = load_column_types(spec, settings(ctx))
    data = {
        "name": spec.name,
        "group": spec.group,
        "inputs": list(spec.inputs),
        "reference": built.reference_topics,
        "stages": [s.name for s in built.stages],
        "history": spec.history.topic,
        "latest": spec.latest.topic,
        "dead_letter": spec.dead_letter.topic,
        "guarantee": spec.guarantee,
        "max_stage_errors": spec.max_stage_errors,
        "fast_path": spec.fast_path,
        "fast_path_on": fast is not None,
        # The stages that run compiled: all (a fast path), those around Python stages, none.
        "compiled": [s.name for s in built.stages]
        if fast is not None
        else list(split.compiled)
        if split is not None
        else [],
        "column_types": spec.column_types,
        "typed_inputs": [
            f"{topic} (connector {types.connector_of(topic)})" for topic in spec.inputs
        ]
        if types is not None
        else [],
    }
    if output == Output.json:
        print_json(data)
    else:
        print_mapping(
            {
                k: ", ".join(v) if isinstance(v, list) else "-" if v is None else v
                for k, v in data.items()
            }
        )


@app.command("check-schemas")
def check_schemas(
    directory: Path = typer.Argument(
        Path("schemas"),
        help="Schema folder of <EventType>/v<N>.json files (default: ./schemas).",
        show_default=False,
    ),
    output: Output = OUTPUT,
) -> None:
    """Fail when a schema is invalid or a newer version is not backward compatible."""
    from seam.errors import ConfigError
    from seam.transforms.compat import check_schema_set
    from seam.transforms.schemas import SchemaSet

    schemas = SchemaSet.load(directory)
    reports = check_schema_set(schemas.versions)
    bad = [r for r in reports if r.problems]
    if output == Output.json:
        print_json([r.__dict__ for r in reports])
    else:
        print_table(
            f"schemas in {schemas.root}",
            ["schema", "versions", "result"],
            [
                (r.name, ", ".join(f"v{v}" for v in r.versions), "; ".join(r.problems) or _ok(r))
                for r in reports
            ],
        )
    if bad:
        raise ConfigError(
            f"{len(bad)} schema(s) break compatibility or are invalid: "
            + ", ".join(r.name for r in bad),
            hint="keep the old fields and types; add new fields as optional, or publish a new event type",
        )


@app.command("schemas")
def schemas(
    pipeline: Path = PIPELINE,
    write: bool = typer.Option(
        False,
        "--write",
        help="Write the schemas as <Name>/v<N>.json: a new version where one changed (refused "
        "when it breaks compatibility), nothing where none did.",
    ),
    to: Path | None = typer.Option(
        None,
        "--to",
        help="The folder to write to (default: the pipeline's `schemas:`).",
    ),
    output: Output = OUTPUT,
) -> None:
    """The JSON Schemas of a declared pipeline's events and state, derived from its
    declaration; with --write, kept as versioned files that check-schemas holds compatible."""
    from seam.errors import ConfigError
    from seam.transforms.declared.derive import derive
    from seam.transforms.declared.schema_files import write_schemas
    from seam.transforms.pipeline_file import load_pipeline

    spec = load_pipeline(pipeline)
    if spec.declaration is None:
        raise ConfigError(
            f"{pipeline}: declares no tables, entity or events: there is nothing to derive",
            hint='declare them (transforms README, "Declared pipelines"), or write the '
            "schemas of a pipeline of Python stages by hand",
        )
    derived = derive(spec.declaration)
    folder = to or spec.schemas
    if write and folder is None:
        raise ConfigError(
            f"{pipeline}: where to? The pipeline names no schema folder",
            hint="add 'schemas: schemas' (relative to the pipeline file) to it, or pass --to DIR",
        )
    if not write or folder is None:
        if output == Output.json:
            print_json(derived)
        else:
            print_table(
                f"schemas of {spec.name}",
                ["schema", "fields"],
                [(n, ", ".join(s.get("properties", {}))) for n, s in derived.items()],
            )
        return
    results = write_schemas(derived, folder)
    if output == Output.json:
        print_json([r._asdict() for r in results])
    else:
        print_table(
            f"schemas in {folder}",
            ["schema", "version", "result"],
            [(r.name, f"v{r.version}", r.result) for r in results],
        )


def _ok(report: Any) -> str:
    """'ok', and how many tightenings its versions declare (x-seam-tightened; `-o json`
    lists them)."""
    declared = len(report.declared)
    return f"ok, {declared} declared tightening{'s' * (declared != 1)}" if declared else "ok"


def _progress_printer(interactive: bool) -> Any:
    log = logging.getLogger("seam.transform.progress")

    def show(progress: Progress) -> None:
        if interactive:
            sys.stderr.write("\r\x1b[2K" + progress.line())
            sys.stderr.flush()
        else:
            log.info("%s", json.dumps(progress.as_dict(), sort_keys=True))

    return show


def _run(
    ctx: typer.Context,
    spec: PipelineSpec,
    *,
    instance_id: str,
    metrics_port: int | None,
    broker_timeout: float,
    progress_interval: float,
    until_caught_up: bool,
    output: Output,
) -> None:
    from seam.transforms.column_types import load_column_types
    from seam.transforms.worker import Worker, WorkerOptions

    column_types = load_column_types(spec, settings(ctx))  # before anything starts
    interactive = sys.stderr.isatty()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        # On a terminal a log line first clears the live progress line it would run into.
        format=("\r\x1b[2K" if interactive else "")
        + "%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if interactive:  # the live line says it all; keep the log for warnings
        logging.getLogger("seam.transform").setLevel(logging.WARNING)
    options = WorkerOptions(
        instance_id=instance_id,
        broker_timeout=broker_timeout,
        progress_interval=progress_interval if not interactive else min(progress_interval, 1.0),
        metrics_port=metrics_port,
        stop_when_caught_up=until_caught_up,
    )
    worker = Worker(
        spec,
        settings(ctx).kafka,
        options,
        on_progress=_progress_printer(interactive),
        column_types=column_types,
    )
    try:
        progress = worker.run()
    finally:
        if interactive:  # also before an error: it must not run into the progress line
            sys.stderr.write("\n")
    summary = progress.as_dict()
    if output == Output.json:
        print_json(summary)
    else:
        print_mapping({k: json.dumps(v) if isinstance(v, dict) else v for k, v in summary.items()})


INSTANCE = typer.Option(
    "",
    "--instance-id",
    help="This worker's name in the group (default: the host name). Workers of one group need "
    "different ones; a restarted worker should keep its own (it then aborts what it left open).",
)
METRICS = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on this port.")
BROKER_TIMEOUT = typer.Option(
    30.0, "--broker-timeout", min=1.0, help="Seconds without a reachable broker before stopping."
)
INTERVAL = typer.Option(5.0, "--progress-interval", min=0.2, help="Seconds between progress lines.")
MAX_STAGE_ERRORS = typer.Option(
    None,
    "--max-stage-errors",
    min=-1,
    help="Stop once stages raised on more than this many records (-1: never). "
    "Default: the pipeline file's processing.max_stage_errors, else 100.",
)


@app.command("run")
def run(
    ctx: typer.Context,
    pipeline: Path = PIPELINE,
    at_least_once: bool = typer.Option(
        False, "--at-least-once", help="Produce then commit offsets: faster, duplicates possible."
    ),
    instance_id: str = INSTANCE,
    metrics_port: int | None = METRICS,
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Records per batch."),
    max_stage_errors: int | None = MAX_STAGE_ERRORS,
    broker_timeout: float = BROKER_TIMEOUT,
    progress_interval: float = INTERVAL,
    until_caught_up: bool = typer.Option(
        False, "--until-caught-up", help="Stop once the assigned partitions are read to their end."
    ),
    output: Output = OUTPUT,
) -> None:
    """Run a worker of PIPELINE until Ctrl-C / SIGTERM (which finish the current batch)."""
    from dataclasses import replace

    from seam.transforms.pipeline_file import load_pipeline

    spec = load_pipeline(pipeline)
    if at_least_once:
        spec = spec.with_guarantee("at_least_once")
    if batch_size:
        spec = replace(spec, batch_size=batch_size)
    if max_stage_errors is not None:
        spec = replace(spec, max_stage_errors=max_stage_errors)
    _run(
        ctx,
        spec,
        instance_id=instance_id,
        metrics_port=metrics_port,
        broker_timeout=broker_timeout,
        progress_interval=progress_interval,
        until_caught_up=until_caught_up,
        output=output,
    )


@app.command("replay")
def replay(
    ctx: typer.Context,
    pipeline: Path = PIPELINE,
    suffix: str | None = typer.Option(
        None, "--suffix", help="Write to new topics <topic><suffix> with group <group><suffix>."
    ),
    delete_old: bool = typer.Option(
        False, "--delete-old", help="Delete the output topics and the group's offsets first."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting."),
    follow: bool = typer.Option(
        False, "--follow", help="Keep running after catching up (default: stop at the end)."
    ),
    instance_id: str = INSTANCE,
    metrics_port: int | None = METRICS,
    max_stage_errors: int | None = MAX_STAGE_ERRORS,
    broker_timeout: float = BROKER_TIMEOUT,
    progress_interval: float = INTERVAL,
    output: Output = OUTPUT,
) -> None:
    """Rebuild the pipeline's outputs from offset 0 of its inputs."""
    from dataclasses import replace

    from seam.errors import ConfigError
    from seam.streams.kafka import Kafka
    from seam.transforms.pipeline_file import load_pipeline
    from seam.transforms.topics import delete_group, delete_outputs, ensure_outputs

    if (suffix is None) == (not delete_old):
        raise ConfigError(
            "replay needs exactly one of --suffix and --delete-old",
            hint="--suffix .v2 writes new topics beside the old ones; --delete-old replaces them",
        )
    spec = load_pipeline(pipeline)
    if max_stage_errors is not None:
        spec = replace(spec, max_stage_errors=max_stage_errors)
    bootstrap = settings(ctx).kafka
    if suffix is not None:
        spec = spec.with_suffix(suffix)
        with Kafka(bootstrap, timeout=broker_timeout) as kafka:
            existing = kafka.topic_names()
            clash = [o.topic for o in spec.outputs if o.topic in existing]
            if clash:
                raise ConfigError(
                    f"replay target topics already exist: {', '.join(clash)}",
                    hint="choose another --suffix, or replace them with --delete-old",
                )
            delete_group(kafka, spec.group)
    else:
        names = ", ".join(o.topic for o in spec.outputs)
        if not yes:
            confirm(f"Delete {names} and the offsets of group {spec.group}?")
        with Kafka(bootstrap, timeout=broker_timeout) as kafka:
            delete_group(kafka, spec.group)
            delete_outputs(kafka, spec)
            partitions = len(kafka.partitions(spec.inputs[0]))
            ensure_outputs(kafka, spec, partitions)
    _run(
        ctx,
        spec,
        instance_id=instance_id,
        metrics_port=metrics_port,
        broker_timeout=broker_timeout,
        progress_interval=progress_interval,
        until_caught_up=not follow,
        output=output,
    )
