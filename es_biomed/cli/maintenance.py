"""``es-biomed check | repair | compact INDEX``: the embedded engine's invariants, repair and compaction."""

from __future__ import annotations

import sys

import click

from es_biomed.cli.support import emit, fail, handled_errors

__all__ = ["ann_group", "check", "repair", "compact"]

index_argument = click.argument("index_path", metavar="INDEX", type=click.Path(exists=True, file_okay=False))
json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")


@click.command()
@index_argument
@json_option
def check(index_path: str, as_json: bool) -> None:
    """Verify INDEX's invariants (stores agree, vectors committed and sound); exit 1 on a violation."""
    from es_biomed.backends.embedded.maintenance import check_index

    report = check_index(index_path)
    lines = [f"{'ok  ' if i.ok else 'FAIL'}  {i.name}: {i.detail}" for i in report.invariants]
    if report.recovery:
        lines.insert(0, f"recovered an interrupted commit on open: {report.recovery}")
    lines.append(
        f"{report.documents} documents, {report.vector_rows} vector rows ({report.dead_rows} dead) in "
        f"{report.seconds:.2f}s: {'every invariant holds' if report.ok else 'VIOLATED'}"
    )
    if not report.ok and not any(i.name == "opens" and not i.ok for i in report.invariants):
        lines.append(f"repair: es-biomed repair {index_path}")
    emit(report.to_dict(), as_json, "\n".join(lines))
    if not report.ok:
        sys.exit(1)


@click.command()
@index_argument
@json_option
def repair(index_path: str, as_json: bool) -> None:
    """Make INDEX consistent, keeping every document it can prove; re-run `es-biomed index` for the rest."""
    from es_biomed.backends.embedded.maintenance import repair_index

    try:
        report = repair_index(index_path)
    except handled_errors() as exc:
        raise fail(exc) from exc
    text = (
        f"repaired {index_path} in {report.seconds:.2f}s: {len(report.dropped)} documents dropped "
        f"(not provable), {report.bm25_deleted} BM25 documents deleted, {report.truncated_rows} vector rows truncated"
    )
    if report.dropped:
        text += f"\nre-run `es-biomed index CORPUS --index {index_path}` to restore: {', '.join(report.dropped[:10])}"
        text += " ..." if len(report.dropped) > 10 else ""
    emit(report.to_dict(), as_json, text)


@click.command()
@index_argument
@json_option
def compact(index_path: str, as_json: bool) -> None:
    """Rewrite INDEX's vector file without dead rows (readers keep working); print the space reclaimed."""
    from es_biomed.backends.embedded.maintenance import compact_index

    try:
        out = compact_index(index_path)
    except handled_errors() as exc:
        raise fail(exc) from exc
    mib = out["reclaimed_bytes"] / 2**20
    text = (
        f"compacted {index_path}: {out['before']['rows']} -> {out['after']['rows']} vector rows, "
        f"{mib:.1f} MiB reclaimed in {out['seconds']:.2f}s"
    )
    emit(out, as_json, text)


@click.group("ann")
def ann_group() -> None:
    """The embedded engine's ANN graph (usearch HNSW) for dense and hybrid search."""


@ann_group.command("build")
@index_argument
@click.option(
    "--dtype", type=click.Choice(["f32", "f16", "i8", "b1"]), default=None, help="Vectors in the graph [i8]."
)
@click.option("--connectivity", type=click.IntRange(2, 256), default=None, help="HNSW M [16].")
@click.option("--expansion-add", type=click.IntRange(8, 4096), default=None, help="HNSW ef_construction [128].")
@click.option("--expansion-search", type=click.IntRange(8, 4096), default=None, help="HNSW ef at search time [256].")
@click.option("--oversample", type=click.IntRange(1, 100), default=None, help="Rows asked per document wanted [4].")
@json_option
def ann_build(index_path: str, as_json: bool, **given: int | str | None) -> None:
    """Build INDEX's ANN graph, or bring it up to date (the writer keeps it so from then on)."""
    from dataclasses import replace

    from es_biomed.backends.embedded.ann import AnnSettings
    from es_biomed.backends.embedded.index import EmbeddedIndex
    from es_biomed.backends.embedded.maintenance import build_ann

    try:
        cfg = EmbeddedIndex.read_config(index_path)
        base = (cfg.ann if cfg is not None else None) or AnnSettings()
        settings = replace(base, **{k: v for k, v in given.items() if v is not None})
        out = build_ann(index_path, settings)
    except handled_errors() as exc:
        raise fail(exc) from exc
    text = (
        f"ANN graph of {index_path}: {out.get('rows', 0)} vector rows in {out.get('file')} "
        f"({out.get('bytes', 0) / 2**20:.1f} MiB, {settings.dtype}), {out.get('added', 0)} added in "
        f"{out.get('add_seconds', 0):.1f}s; {out['seconds_total']:.1f}s in all"
    )
    emit(out, as_json, text)


@ann_group.command("drop")
@index_argument
def ann_drop(index_path: str) -> None:
    """Remove INDEX's ANN graph: dense search becomes an exact scan."""
    from es_biomed.backends.embedded.maintenance import drop_ann_index

    try:
        n = drop_ann_index(index_path)
    except handled_errors() as exc:
        raise fail(exc) from exc
    click.echo(f"dropped the ANN graph of {index_path} ({n} files removed)")


@ann_group.command("status")
@index_argument
@json_option
def ann_status(index_path: str, as_json: bool) -> None:
    """How INDEX scores dense kNN now (ANN graph or exact) and why."""
    from es_biomed.backends.embedded.index import EmbeddedIndex

    try:
        info = EmbeddedIndex(index_path).vector_search_info()
    except handled_errors() as exc:
        raise fail(exc) from exc
    emit(info, as_json, f"{info['method']}: {info['reason']}")
