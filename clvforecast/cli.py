"""The ``clvforecast`` command line: a thin layer over the public API."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Customer-lifetime-value forecasting: RFM, BG/NBD + Gamma-Gamma, validation, reports.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """Customer-lifetime-value forecasting from transaction logs."""


@app.command()
def demo(out: Path = typer.Option(Path("reports/cdnow_report.html"), help="Where to write the report.")) -> None:
    """Run the main job on the bundled CDNOW sample."""
    import clvforecast as cf

    tx = cf.load_cdnow("sample")
    table = cf.calibration_holdout(tx, calibration_end="1997-09-30", observation_end="1998-06-30", time_unit="W")
    typer.echo(f"CDNOW sample: {len(tx):,} transactions, {tx['customer_id'].nunique():,} customers")
    typer.echo(f"calibration to {table.attrs['calibration_end']}, holdout {table.attrs['holdout_duration']:.0f} weeks")
    typer.echo(f"repeat transactions: calibration {table['frequency'].sum():,}, holdout {table['holdout_frequency'].sum():,}")
    typer.echo(f"customers with a repeat purchase: {(table['frequency'] > 0).sum():,}")
    typer.echo(table.describe().round(3).to_string())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
