"""The ``clvforecast`` command line: a thin layer over the public API (parse flags, call, write files).

Every subcommand reads transactions with the same column flags (``--customer-col``, ``--date-col``,
``--amount-col``, ``--date-format``). Bad input ends with a one-line message on stderr and exit code 2;
``--debug`` shows the traceback instead. ``--quiet`` silences progress output.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

app = typer.Typer(
    help="Customer-lifetime-value forecasting: RFM tables, BG/NBD + Gamma-Gamma, holdout validation, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class _State:
    quiet: bool = False
    debug: bool = False


STATE = _State()

# Shared options -------------------------------------------------------------------------------------------------
CustomerCol = Annotated[str, typer.Option("--customer-col", help="Column holding the customer id.")]
DateCol = Annotated[str, typer.Option("--date-col", help="Column holding the purchase date.")]
AmountCol = Annotated[str, typer.Option("--amount-col", help="Column holding the purchase value.")]
DateFormat = Annotated[
    str | None, typer.Option("--date-format", help="strftime pattern for non-ISO dates, e.g. '%Y%m%d'.")
]
TimeUnit = Annotated[str, typer.Option("--time-unit", help="D, W, M or Y: the unit of recency, T and horizons.")]
CalEnd = Annotated[str | None, typer.Option("--calibration-end", help="Last day of the calibration period.")]
ObsEnd = Annotated[str | None, typer.Option("--observation-end", help="Last day of the data to use.")]
Horizon = Annotated[str, typer.Option("--horizon", help="Forecast horizon with its unit, e.g. 52W, 12M, 365D.")]
Discount = Annotated[float, typer.Option("--discount-rate", help="Annual discount rate (0.1 for 10%).")]
Margin = Annotated[float, typer.Option("--margin", help="Profit margin applied to spend (1.0 = revenue).")]
OnInvalid = Annotated[str, typer.Option("--on-invalid", help="raise (default) or drop invalid rows (counted).")]


def _read_kwargs(customer_col: str, date_col: str, amount_col: str, date_format: str | None, on_invalid: str) -> dict:
    return dict(customer_id=customer_col, date=date_col, amount=amount_col, date_format=date_format,
                on_invalid=on_invalid)


@contextlib.contextmanager
def _step(description: str) -> Iterator[None]:
    """Show a spinner with elapsed time on stderr while a step runs (silent with --quiet or off a terminal)."""
    if STATE.quiet:
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        progress.add_task(description, total=None)
        yield
    console.print(f"[green]done[/green] {description}")


def _say(message: str) -> None:
    if not STATE.quiet:
        typer.echo(message, err=True)


def _write_table(df: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df.to_parquet(out)
    elif suffix in (".csv", ".txt"):
        df.to_csv(out)
    elif suffix == ".json":
        out.write_text(df.reset_index().to_json(orient="records", indent=1))
    else:
        raise typer.BadParameter(f"--out {out}: use a .csv, .parquet or .json file name")


def _read_table(path: Path) -> pd.DataFrame:
    """An RFM table written by ``clvforecast summarize`` (CSV or Parquet), indexed by customer_id."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    df = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    if "customer_id" in df.columns:
        df = df.set_index("customer_id")
    return df


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line on stderr and exit code 2 (the traceback with --debug)."""
    import functools

    from .exceptions import ConvergenceError, DataValidationError, NotFittedError

    expected = (DataValidationError, ValueError, FileNotFoundError, NotFittedError, ConvergenceError, KeyError,
                TypeError)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except expected as exc:
            if STATE.debug:
                traceback.print_exc()
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper


@app.callback()
def _root(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Customer-lifetime-value forecasting from transaction logs."""
    STATE.quiet, STATE.debug = quiet, debug


@app.command()
@_guarded
def summarize(
    transactions: Annotated[Path, typer.Argument(help="Transaction log: CSV or Parquet.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output RFM table (.csv or .parquet).")],
    observation_end: ObsEnd = None,
    calibration_end: CalEnd = None,
    time_unit: TimeUnit = "D",
    customer_col: CustomerCol = "customer_id",
    date_col: DateCol = "date",
    amount_col: AmountCol = "amount",
    date_format: DateFormat = None,
    on_invalid: OnInvalid = "raise",
) -> None:
    """Transactions -> RFM table (with holdout columns when --calibration-end is given)."""
    import clvforecast as cf

    kw = _read_kwargs(customer_col, date_col, amount_col, date_format, on_invalid)
    with _step("summarising transactions"):
        if calibration_end:
            if not observation_end:
                raise ValueError("--calibration-end needs --observation-end (the end of the holdout period)")
            table = cf.calibration_holdout(str(transactions), calibration_end=calibration_end,
                                           observation_end=observation_end, time_unit=time_unit, **kw)
        else:
            table = cf.rfm_summary(str(transactions), observation_end=observation_end, time_unit=time_unit, **kw)
    _write_table(table, out)
    _say(f"wrote {len(table):,} customers to {out} (time unit {table.attrs['time_unit']})")


@app.command()
@_guarded
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the report.")] = Path(
        "reports/cdnow_report.html"
    ),
) -> None:
    """Run the main job on the bundled CDNOW sample."""
    import clvforecast as cf

    tx = cf.load_cdnow("sample")
    table = cf.calibration_holdout(tx, calibration_end="1997-09-30", observation_end="1998-06-30", time_unit="W")
    typer.echo(f"CDNOW sample: {len(tx):,} transactions, {tx['customer_id'].nunique():,} customers")
    typer.echo(f"calibration to {table.attrs['calibration_end']}, holdout {table.attrs['holdout_duration']:.0f} weeks")
    typer.echo(f"repeat transactions: calibration {table['frequency'].sum():,}, "
               f"holdout {table['holdout_frequency'].sum():,}")
    typer.echo(table.describe().round(3).to_string())


def main() -> None:
    """Entry point of the ``clvforecast`` executable."""
    app()


if __name__ == "__main__":
    main()
