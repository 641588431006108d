"""``es-biomed check | repair | compact INDEX``: the embedded engine's invariants, repair and compaction."""

from __future__ import annotations

import sys

import click

from es_biomed.cli.support import emit, fail, handled_errors

__all__ = ["check", "repair", "compact"]

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
