"""``es-biomed report CONFIG --output DIR``: from raw corpora to a report (see :mod:`es_biomed.eval.report_build`)."""

from __future__ import annotations

import click

from es_biomed.cli.support import fail, handled_errors


@click.command(name="report")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Directory for the report.")
@click.option("--no-progress", is_flag=True)
def report(config: str, output: str, no_progress: bool) -> None:
    """Index and evaluate what CONFIG lists (BEIR sets, BioASQ Table 9 sets, QA), and write report.md,
    report.json, plots/ and runs/ into DIR. The config is checked in full before any work starts."""
    from es_biomed.eval.report_build import build_report
    from es_biomed.eval.report_config import load_report_config

    try:
        cfg = load_report_config(config)
        data = build_report(cfg, output, show_progress=not no_progress)
    except handled_errors() as exc:
        raise fail(exc) from exc
    n = len(data["beir"]) + len(data["bioasq"])
    click.echo(f"{output}/report.md: {n} evaluations, {len(data['plots'])} plots, in {data['seconds']} s")
