"""The ``clvforecast`` command line: a thin layer over the public API (parse flags, call, write files).

Every subcommand reads transactions with the same column flags (``--customer-col``, ``--date-col``,
``--amount-col``, ``--date-format``). Bad input ends with a one-line message on stderr and exit code 2;
``--debug`` shows the traceback instead. ``--quiet`` silences progress output.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
import typer.core

# Click's UsageError (vendored by recent Typer, so reached through a public subclass).
_USAGE_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

class _Group(typer.core.TyperGroup):
    """The command group: every error is one line on stderr, warnings too, and global flags go anywhere.

    Usage errors (a missing ``--out``, ``--discount-rate abc``) print ``error: ...`` and exit 2 instead of
    Typer's boxed usage; warnings print ``warning: ...`` (no Python source lines); ``--quiet``/``-q`` and
    ``--debug`` are accepted before or after the subcommand.
    """

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,  # type: ignore[override]
             standalone_mode: bool = True, **extra: Any) -> Any:
        _SHOWN.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except _USAGE_ERROR as exc:
                ctx = getattr(exc, "ctx", None)
                if type(exc).__name__ == "NoArgsIsHelpError":  # a bare 'clvforecast': the help, as asked
                    typer.echo(ctx.get_help() if ctx else "")
                    return 0 if not standalone_mode else sys.exit(0)
                where = f" (see '{ctx.command_path} --help')" if ctx else ""
                typer.echo(f"error: {_one_line(exc.format_message())}{where}", err=True)  # type: ignore[attr-defined]
                code = 2
            except typer.Abort:
                typer.echo("error: aborted", err=True)
                code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


#: The warnings already printed by this command: a fit repeated at several cutoffs warns once, not once per fit.
_SHOWN: set[str] = set()


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    text = _cli_words(_one_line(str(message)))
    if text not in _SHOWN:
        _SHOWN.add(text)
        typer.echo(f"warning: {text}", err=True)


def _set_flag(ctx: Any, param: Any, value: bool) -> bool:
    if value:
        setattr(STATE, param.name, True)
    return value


# --quiet and --debug are accepted after the subcommand too: every subcommand declares them (they set STATE).
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.", callback=_set_flag,
                                     is_eager=True)]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.", callback=_set_flag,
                                     is_eager=True)]


app = typer.Typer(
    cls=_Group,
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
TimeUnit = Annotated[
    str, typer.Option("--time-unit", help="D, W, M or Y: the unit of recency, T and horizons.")
]
CalEnd = Annotated[str | None, typer.Option("--calibration-end", help="Last day of the calibration period.")]
ObsEnd = Annotated[str | None, typer.Option("--observation-end", help="Last day of the data to use.")]
Horizon = Annotated[
    str, typer.Option("--horizon", help="Forecast horizon with its unit, e.g. 52W, 12M, 365D.")
]
Discount = Annotated[float, typer.Option("--discount-rate", help="Annual discount rate (0.1 for 10%).")]
Margin = Annotated[float, typer.Option("--margin", help="Profit margin applied to spend (1.0 = revenue).")]
ModelName = Annotated[
    str | None,
    typer.Option("--model", help="Purchase model: bgnbd (BG/NBD), pnbd (Pareto/NBD) or mbgnbd (MBG/NBD)."),
]
Interval = Annotated[
    float | None,
    typer.Option("--interval", help="Add equal-tailed predictive intervals at this level, e.g. 0.9."),
]
Engine = Annotated[
    str, typer.Option("--engine", help="duckdb (default, this machine) or spark (Apache Spark).")
]
SparkMaster = Annotated[
    str | None,
    typer.Option("--spark-master", help="Spark master URL with --engine spark (default: local[*]).")
]
Currency = Annotated[
    str | None,
    typer.Option("--currency", help="Currency of the amounts in the report: a symbol ($, £) or an ISO code (GBP)."),
]


@dataclass(frozen=True)
class _ReadFlag:
    """A command-line flag for one read option of the library (the same name in every subcommand)."""

    option: str  # the read option (keyword of clvforecast.read_transactions)
    flag: str
    help: str
    default: Any = None
    kind: Any = str  # str, bool (a switch), or str | None


# The flags of every subcommand that reads transactions, defined once: each maps to one read option of the
# library (clvforecast.TransactionLog), so the CLI and the Python API name the same things, and the hints in the
# library's messages ("pass returns='net'") are rewritten to these flags.
READ_FLAGS: tuple[_ReadFlag, ...] = (
    _ReadFlag("customer_id", "--customer-col", "Column holding the customer id.", "customer_id"),
    _ReadFlag("date", "--date-col", "Column holding the purchase date (or timestamp).", "date"),
    _ReadFlag("amount", "--amount-col", "Column holding the purchase value (not with --price-col).", "amount"),
    _ReadFlag("no_amount", "--no-amount", "The log has no amounts: purchases and P(alive) only, no spend.",
              False, bool),
    _ReadFlag("quantity", "--quantity-col", "Column holding the quantity of a line item.", None, str | None),
    _ReadFlag("price", "--price-col", "Column holding the unit price: amount = quantity x price.", None,
              str | None),
    _ReadFlag("item", "--item-col", "Column naming the item (returns are matched to the same item).", None,
              str | None),
    _ReadFlag("invoice", "--invoice-col", "Column naming the order/invoice.", None, str | None),
    _ReadFlag("date_format", "--date-format", "strftime pattern for non-ISO dates, e.g. '%d/%m/%Y'.",
              None, str | None),
    _ReadFlag("encoding", "--encoding", "Text encoding of a CSV file, e.g. latin-1 (default UTF-8).", None,
              str | None),
    _ReadFlag("on_invalid", "--on-invalid", "raise (default) or drop invalid rows (counted).", "raise"),
    _ReadFlag("returns", "--returns", "Returns (negative lines): raise, drop (counted) or net them against "
              "earlier purchases.", None, str | None),
    _ReadFlag("duplicates", "--duplicates", "Exact duplicate rows: keep (counted, warned) or drop (counted).",
              None, str | None),
    _ReadFlag("zero_amounts", "--zero-amounts", "Zero-value rows: keep, drop (counted) or raise.", None,
              str | None),
    _ReadFlag("extreme", "--extreme", "Extreme purchase days: keep (listed) or cap the spend model's view.",
              "keep"),
)


def _read_options(values: dict[str, Any]) -> dict[str, Any]:
    """The library's read options from the flags' values (only those that differ from the defaults)."""
    options = {f.option: values[f.option] for f in READ_FLAGS if values[f.option] != f.default}
    if options.pop("no_amount", False):
        if "amount" in options or options.get("price"):
            raise ValueError("--no-amount reads a log without amounts: drop --amount-col and --price-col")
        options["amount"] = None
    return options


def _reads_transactions(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a subcommand the read flags of READ_FLAGS; it receives them as one dict ``read`` (read options)."""
    import functools
    import inspect

    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "read"]
    added = [
        inspect.Parameter(
            f"read_{f.option}", inspect.Parameter.KEYWORD_ONLY, default=f.default,
            annotation=Annotated[f.kind, typer.Option(f.flag, help=f.help)],
        )
        for f in READ_FLAGS
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {f.option: kwargs.pop(f"read_{f.option}") for f in READ_FLAGS}
        return fn(*args, read=_read_options(values), **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind == p.POSITIONAL_OR_KEYWORD and
              p.default is not p.empty else p for p in own]
    wrapper.__signature__ = sig.replace(parameters=params + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params + added}
    return wrapper


@contextlib.contextmanager
def _step(description: str) -> Iterator[None]:
    """Show a spinner with elapsed time on stderr while a step runs (silent with --quiet or off a terminal)."""
    if STATE.quiet:
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:  # pipes, CI, CliRunner: no spinner, no noise
        yield
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        progress.add_task(description, total=None)
        yield
    console.print(f"[green]done[/green] {description}")


def _say(message: str) -> None:
    if not STATE.quiet:
        typer.echo(message, err=True)


_TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".txt": "csv", ".json": "json"}


def _blocking_file(path: Path) -> Path | None:
    """The first existing file among the folders above ``path`` (a folder could not be created there)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_inputs(outputs: list[Path], inputs: list[Path]) -> None:
    """Refuse outputs that are, or would overwrite, one of the inputs (checked before any work)."""
    for out in outputs:
        for given in inputs:
            if _same_file(out, given) or out.resolve() == given.resolve():
                raise ValueError(f"--out {out} would overwrite the input {given}; write to another file")


def _check_out(out: Path, suffixes: tuple[str, ...] | None = None, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an unusable --out before any work is done."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name")
    allowed = suffixes or tuple(_TABLE_FORMATS)
    if out.suffix.lower() not in allowed:
        raise ValueError(f"--out {out}: give a file name ending in {', '.join(allowed)}")
    blocker = _blocking_file(out)
    if blocker is not None:
        raise ValueError(f"--out {out}: {blocker} is a file, so no folder can be made there; choose another path")
    _refuse_inputs([out], list(inputs))


def _write_table(df: pd.DataFrame, out: Path) -> None:
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = _TABLE_FORMATS[out.suffix.lower()]
    if kind == "parquet":
        df.to_parquet(out)
    elif kind == "csv":
        df.to_csv(out)
    else:
        out.write_text(df.reset_index().to_json(orient="records", indent=1))


def _check_out_dir(out: Path, writes: tuple[str, ...] = (), inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an --out folder that is an existing file, or whose files would overwrite an input."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is created if needed)")
    blocker = _blocking_file(out)
    if blocker is not None:
        raise ValueError(f"--out {out}: {blocker} is a file, so no folder can be made there; choose another path")
    _refuse_inputs([out / name for name in writes] + [out], list(inputs))


_RFM_NEEDS = ("frequency", "recency", "T")


def _read_table(path: Path) -> pd.DataFrame:
    """An RFM table written by ``clvforecast summarize`` (CSV or Parquet), indexed by customer_id."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the RFM table file written by 'clvforecast summarize'")
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    kind = _TABLE_FORMATS.get(path.suffix.lower())
    if kind not in ("csv", "parquet"):
        raise ValueError(f"{path}: an RFM table must be a .csv or .parquet file (as written by summarize)")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes); write the RFM table with 'clvforecast summarize'")
    return _keyed_rfm(pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path), path)


def _keyed_rfm(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``df`` (read from ``path``) checked as an RFM table with customer ids, indexed by customer_id."""
    if df.index.name == "customer_id":  # Parquet keeps the index
        df = df.reset_index()
    if not set(_RFM_NEEDS) <= set(df.columns):
        dates = [c for c in df.columns if "date" in str(c).lower() or "time" in str(c).lower()]
        what = "a transaction log" if dates else "not an RFM table"
        raise ValueError(
            f"{path} is {what} (it has no {', '.join(c for c in _RFM_NEEDS if c not in df.columns)} column); "
            "build the RFM table first with 'clvforecast summarize <transactions> --out rfm.parquet'"
        )
    if "customer_id" not in df.columns:
        raise ValueError(
            f"{path} has no customer_id column, so the results could not be joined back to customers; write "
            "the table with 'clvforecast summarize' or name its id column customer_id"
        )
    _check_ids_present(df["customer_id"], path)
    return df.set_index("customer_id")


def _check_ids_present(ids: Any, path: Path) -> None:
    """Refuse rows without a customer id: the forecast is keyed by customer."""
    missing = int(pd.isna(ids).sum())
    if missing:
        raise ValueError(f"{path}: {missing:,} rows have no customer_id; drop them or give them ids (the forecast "
                         "is keyed by customer)")


# The library's messages name Python arguments; on the command line the same fixes are flags. Only a name
# that starts a word after a space or "(" is a hint: paths ('date=2024-01-01/x.csv') and values stay as they are.
def _hint_patterns() -> list[tuple[re.Pattern[str], str]]:
    """Library hints -> CLI flags: ``returns='net'`` -> ``--returns net``, ``date=`` -> ``--date-col ``."""
    hint = r"(?:^|(?<=[\s(]))"
    patterns = [
        (re.compile(hint + r"negative_amounts='(\w+)'"), r"--returns \1"),
        (re.compile(hint + r"amount=None"), "--no-amount"),
        (re.compile(hint + r"time_unit="), "--time-unit "),
        # the forecast's own arguments, which are flags of the same names
        *((re.compile(hint + name + "="), f"--{name.replace('_', '-')} ")
          for name in ("interval", "discount_rate", "margin", "horizon")),
    ]
    # the cutoffs, named by the library's checks and warnings ("pass a later observation_end")
    for option in ("observation_end", "calibration_end"):
        flag = "--" + option.replace("_", "-")
        patterns.append((re.compile(hint + option + r"='([^']*)'"), flag + r" \1"))
        patterns.append((re.compile(hint + option + r"=(?!\.\.\.)"), flag + " "))  # not "f(x=...)" code
        patterns.append((re.compile(hint + option + r"\b(?![=.(])"), flag))
    for f in READ_FLAGS:
        if f.kind is bool:
            continue
        if f.option.endswith(("_id", "date", "amount", "quantity", "price", "item", "invoice", "format")):
            patterns.append((re.compile(hint + f.option + "="), f.flag + " "))
        else:  # a policy or a pattern: the value follows the flag
            patterns.append((re.compile(hint + f.option + r"='([^']*)'"), f.flag + r" \1"))
            patterns.append((re.compile(hint + f.option + "="), f.flag + " "))
    return patterns


_FLAG_FOR = _hint_patterns()


def _cli_words(message: str) -> str:
    for pattern, flag in _FLAG_FOR:
        message = pattern.sub(flag, message)
    return message


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line on stderr and exit code 2 (the traceback with --debug)."""
    import functools

    from .exceptions import ConvergenceError, DataValidationError, NotFittedError

    expected = (
        DataValidationError,
        ValueError,
        OSError,  # missing files, folders given as files, permissions
        ImportError,
        NotFittedError,
        ConvergenceError,
        KeyError,
        TypeError,
    )

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except expected as exc:
            if STATE.debug:
                traceback.print_exc()
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(f"error: {_cli_words(message)}", err=True)
            raise typer.Exit(code=2) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):  # click's usage errors among them
            raise
        except Exception as exc:  # a bug (ours or an engine's): one line, the traceback with --debug
            if STATE.debug:
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__:
                typer.echo(f"error: out of memory ({type(exc).__name__}): give summarize a --memory-limit (e.g. "
                           "2GB) below the machine's free memory so that it works in parts and spills to disk, "
                           "or run on a larger machine (or with --engine spark)", err=True)
                raise typer.Exit(code=1) from None
            typer.echo(f"error: unexpected {type(exc).__name__}{': ' + first if first else ''} (a bug: run the "
                       "command again with --debug for the traceback, and report it)", err=True)
            raise typer.Exit(code=1) from None

    return wrapper


@app.callback()
def _root(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Customer-lifetime-value forecasting from transaction logs."""
    STATE.quiet, STATE.debug = quiet, debug


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the duration of a step (and restored: the CLI may run in-process)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@app.command()
@_guarded
@_reads_transactions
def summarize(
    transactions: Annotated[Path, typer.Argument(help="Transaction log: CSV or Parquet.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output RFM table (.csv or .parquet).")],
    observation_end: ObsEnd = None,
    calibration_end: CalEnd = None,
    time_unit: TimeUnit = "W",
    engine: Engine = "duckdb",
    spark_master: SparkMaster = None,
    memory_limit: Annotated[
        str | None,
        typer.Option("--memory-limit", help="Memory for summarising, e.g. 2GB: the numpy pass sizes its "
                     "buckets to it, DuckDB spills larger group-bys to disk (default: buckets of 8M rows, and "
                     "DuckDB's 80% of the machine's memory)."),
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
    read: dict[str, Any] | None = None,
) -> None:
    """Transactions -> RFM table (with holdout columns when --calibration-end is given)."""
    import clvforecast as cf

    from .io import MEMORY_LIMIT_ENV

    kw = read or {}
    if memory_limit is not None:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT])i?B\s*", memory_limit, flags=re.IGNORECASE)
        if m is None:
            raise ValueError(f"--memory-limit {memory_limit!r}: give an amount with a unit, e.g. 2GB or 500MB")
        if float(m.group(1)) * 1024 ** "KMGT".index(m.group(2).upper()) < 64 * 1024:  # in KB
            raise ValueError(f"--memory-limit {memory_limit!r} is too small for DuckDB to work in; give 64MB or "
                             "more (e.g. 2GB)")
        if _engine(engine) == "spark":
            raise ValueError("--memory-limit is DuckDB's; with --engine spark set Spark's memory "
                             "(spark.driver.memory, spark.executor.memory) in the session or spark-submit")
    if calibration_end and not observation_end:
        raise ValueError("--calibration-end needs --observation-end (the end of the holdout period)")
    if _engine(engine) == "spark":
        _summarize_on_spark(transactions, out, observation_end, calibration_end, time_unit, spark_master, kw)
        return
    # the formats fit and predict read back
    _check_out(out, (".parquet", ".pq", ".csv", ".txt"), inputs=(transactions,))
    limit = {MEMORY_LIMIT_ENV: memory_limit.strip()} if memory_limit is not None else {}
    with _step("summarising transactions"), _environment(limit):
        if calibration_end:
            table = cf.calibration_holdout(
                str(transactions),
                calibration_end=calibration_end,
                observation_end=observation_end,
                time_unit=time_unit,
                **kw,
            )
        else:
            table = cf.rfm_summary(
                str(transactions), observation_end=observation_end, time_unit=time_unit, **kw
            )
    _write_table(table, out)
    _say(f"wrote {len(table):,} customers to {out} (time unit {table.attrs['time_unit']})")


def _summarize_on_spark(transactions: Path, out: Path, observation_end: str | None, calibration_end: str | None,
                        time_unit: str, spark_master: str | None, read: dict[str, Any]) -> None:
    """summarize --engine spark: the same table computed by Spark, written as a Parquet folder."""
    from . import spark as cs

    _refuse_inputs([out], [transactions])
    session = cs.get_session(spark_master)
    with _step("summarising transactions on Spark"):
        if calibration_end:
            table = cs.calibration_holdout(str(transactions), calibration_end=calibration_end,
                                           observation_end=observation_end, time_unit=time_unit,
                                           session=session, **read)
        else:
            table = cs.rfm_summary(str(transactions), observation_end=observation_end, time_unit=time_unit,
                                   session=session, **read)
        cs.write_table(table, out)
    _say(f"wrote the RFM table to the Parquet folder {out} (time unit {table.attrs['time_unit']})")


_VALIDATE_FILES = (
    "metrics.csv", "metrics.json", "customers.csv", "conditional_expectations.csv", "tracking.csv",
    "conditional_expectations.png", "period_transactions.png", "gains_spend.png", "tracking_cumulative.png",
    "tracking_incremental.png", "totals.csv", "pit.png",
)


def _check_horizon(horizon: str) -> None:
    """A forecast over no time says nothing: refuse a zero horizon (and an unreadable one) up front."""
    from .units import parse_horizon

    if parse_horizon(horizon, "D") <= 0:
        raise ValueError(f"--horizon {horizon} is zero; give a positive duration such as 52W, 12M or 365D")


def _table_unit(table: pd.DataFrame, time_unit: str | None, path: Path) -> pd.DataFrame:
    """Attach the time unit to an RFM table read from a file (Parquet keeps it; CSV needs --time-unit)."""
    from .units import check_time_unit

    stored = table.attrs.get("time_unit")
    if time_unit is not None:
        unit = check_time_unit(time_unit)
        if stored is not None and stored != unit:
            raise ValueError(f"{path} is in time unit {stored!r} but --time-unit is {unit!r}")
        table.attrs["time_unit"] = unit
    elif stored is None:
        raise ValueError(
            f"{path} does not record its time unit; pass --time-unit (the one used with summarize)"
        )
    return table


ModelDir = Annotated[
    Path, typer.Argument(help="Folder written by 'clvforecast fit' (bgnbd.json, gamma_gamma.json).")
]
OptTimeUnit = Annotated[
    str | None,
    typer.Option("--time-unit", help="Unit of the RFM table (D, W, M, Y); Parquet tables record it."),
]


_CONTINUOUS = ("bgnbd", "pnbd", "mbgnbd")  # the purchase models of an RFM table (BG/BB needs periods)


def _purchase_name(model: str | None, default: str = "bgnbd") -> str:
    name = (model or default).lower()
    if name not in _CONTINUOUS:
        raise ValueError(f"--model {model}: give one of {', '.join(_CONTINUOUS)}")
    return name


@app.command()
@_guarded
def fit(
    rfm: Annotated[Path, typer.Argument(help="RFM table from 'clvforecast summarize' (CSV or Parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <model>.json and gamma_gamma.json.")],
    time_unit: OptTimeUnit = None,
    model: ModelName = None,
    penalizer: Annotated[float, typer.Option("--penalizer", help="L2 penalty on the parameters.")] = 0.0,
    engine: Engine = "duckdb",
    spark_master: SparkMaster = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """RFM table -> fitted purchase model (BG/NBD by default) and Gamma-Gamma spend model (JSON files that
    clvforecast.load_model reads). A table without monetary_value (--no-amount) gives the purchase model only."""
    import clvforecast as cf

    name = _purchase_name(model)
    _check_out_dir(out, (f"{name}.json", "gamma_gamma.json"), inputs=(rfm,))
    purchase, spend = cf.models.purchase_model(name), cf.GammaGamma(penalizer=penalizer)
    purchase.penalizer = penalizer
    if _engine(engine) == "spark":
        from . import spark as cs

        table: Any = cs.read_table(rfm, cs.get_session(spark_master))
        columns = list(table.df.columns)
        fit_one = lambda m: cs.fit_on_spark(m, table, time_unit=time_unit)  # noqa: E731
    else:
        table = _table_unit(_read_table(rfm), time_unit, rfm)
        columns = list(table.columns)
        fit_one = lambda m: m.fit(table)  # noqa: E731
    with _step(f"fitting {purchase.LABEL}"):
        purchase = fit_one(purchase)
    out.mkdir(parents=True, exist_ok=True)
    purchase.save(out / f"{name}.json")
    written = [out / f"{name}.json"]
    _say(purchase.summary.round(4).to_string())
    if "monetary_value" in columns:
        with _step("fitting Gamma-Gamma"):
            spend = fit_one(spend)
        spend.save(out / "gamma_gamma.json")
        written.append(out / "gamma_gamma.json")
        _say(spend.summary.round(4).to_string())
    _say(f"wrote {' and '.join(str(p) for p in written)}")


def _engine(engine: str) -> str:
    if engine.lower() not in ("duckdb", "spark"):
        raise ValueError(f"--engine {engine}: give duckdb or spark")
    return engine.lower()


def _load_models(models: Path, model: str | None = None) -> tuple[Any, Any]:
    """The purchase model (and the spend model, or None) written by 'clvforecast fit' into ``models``."""
    import clvforecast as cf

    if not models.is_dir():
        raise ValueError(f"{models} is not a folder; give the folder written by 'clvforecast fit --out'")
    found = [n for n in _CONTINUOUS if (models / f"{n}.json").is_file()]
    if model is not None:
        name = _purchase_name(model)
        if name not in found:
            raise ValueError(f"{models} holds no {name}.json; fit it with 'clvforecast fit ... --model {name}'")
    elif len(found) == 1:
        name = found[0]
    elif not found:
        raise ValueError(
            f"{models} holds no purchase model ({', '.join(n + '.json' for n in _CONTINUOUS)}); write one with "
            "'clvforecast fit'"
        )
    else:
        raise ValueError(f"{models} holds several purchase models ({', '.join(found)}); choose one with --model")
    purchase = cf.load_model(models / f"{name}.json")
    spend = cf.load_model(models / "gamma_gamma.json") if (models / "gamma_gamma.json").is_file() else None
    if not isinstance(purchase, cf.models.PurchaseModel) or not (spend is None or
                                                                isinstance(spend, cf.GammaGamma)):
        raise ValueError(
            f"{models} does not hold a purchase model in {name}.json and a Gamma-Gamma model in "
            "gamma_gamma.json; write them with 'clvforecast fit'"
        )
    return purchase, spend


def _model_files(models: Path) -> tuple[Path, ...]:
    return tuple(models / f"{n}.json" for n in (*_CONTINUOUS, "gamma_gamma"))


@app.command()
@_guarded
def predict(
    models: ModelDir,
    rfm: Annotated[Path, typer.Argument(help="RFM table (CSV or Parquet) of the customers to score.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Per-customer forecast (.csv, .parquet or .json).")
    ],
    horizon: Horizon = "52W",
    discount_rate: Discount = 0.10,
    margin: Margin = 1.0,
    time_unit: OptTimeUnit = None,
    model: ModelName = None,
    interval: Interval = None,
    engine: Engine = "duckdb",
    spark_master: SparkMaster = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Models + RFM table -> per-customer forecast: expected purchases, P(alive), expected spend, CLV (with
    predictive intervals when --interval is given)."""
    import clvforecast as cf

    if _engine(engine) == "spark":
        _predict_on_spark(models, rfm, out, horizon, discount_rate, margin, time_unit, model, interval,
                          spark_master)
        return
    _check_out(out, inputs=(rfm, *_model_files(models)))
    _check_horizon(horizon)
    purchase, spend = _load_models(models, model)
    score = functools.partial(cf.predictive_clv, purchase, spend, horizon=horizon, discount_rate=discount_rate,
                              margin=margin, interval=interval, random_state=0)
    if _is_parquet(rfm) and _is_parquet(out) and _parquet_rows(rfm) > _STREAM_ROWS:
        with _step("scoring customers in chunks"):
            n, total_clv = _predict_streamed(score, rfm, out, time_unit)
    else:
        table = _table_unit(_read_table(rfm), time_unit, rfm)
        with _step("scoring customers"):
            forecast = score(table)
        _write_table(forecast, out)
        n, total_clv = len(forecast), (float(forecast["clv"].sum()) if "clv" in forecast else None)
    total = f": total CLV {total_clv:,.2f}" if total_clv is not None else ""
    _say(f"wrote the forecast of {n:,} customers to {out}{total} over {horizon}")


#: Parquet RFM tables above this many customers are scored in chunks of this size and written as they come
#: (bounded memory; a customer's numbers, intervals included, do not depend on the chunk she is in).
_STREAM_ROWS = 1_000_000


def _is_parquet(path: Path) -> bool:
    return _TABLE_FORMATS.get(path.suffix.lower()) == "parquet"


def _parquet_rows(path: Path) -> int:
    """Rows of a Parquet file from its footer (0 when it is not one we can read: the full reader then says why)."""
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # noqa: BLE001 - the whole-table path reports unreadable files in plain words
        return 0


def _predict_streamed(score: Callable[[pd.DataFrame], pd.DataFrame], rfm: Path, out: Path,
                      time_unit: str | None) -> tuple[int, float | None]:
    """Score a large Parquet RFM table chunk by chunk into a Parquet file; (customers, total CLV or None).

    The table is checked as a whole first (the columns, the time unit, unique customer ids: a repeated id in two
    chunks would otherwise go unnoticed); each chunk then goes through the same checks and scoring as a whole
    table. The output is written to a temporary file renamed at the end, so a failure leaves no partial file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(rfm)
    names = pf.schema_arrow.names
    head = _read_table_head(rfm, pf)
    meta = pf.schema_arrow.metadata or {}
    attrs = _parquet_attrs(meta)
    head.attrs = dict(attrs)
    _table_unit(head, time_unit, rfm)
    attrs["time_unit"] = head.attrs["time_unit"]
    range_ids = _range_index(meta)  # pandas stores a RangeIndex as metadata, not as a column
    ids = range_ids if range_ids is not None else pf.read(columns=["customer_id"]).column(0).to_pandas()
    _check_ids_present(ids, rfm)
    if not pd.Index(ids).is_unique:
        dup = pd.Index(ids)[pd.Index(ids).duplicated()]
        raise ValueError(f"{rfm}: customer ids must be unique; {len(dup):,} rows repeat an id, e.g. "
                         f"{', '.join(repr(v) for v in pd.unique(dup)[:3].tolist())}; write the table with "
                         "'clvforecast summarize' (one row per customer)")
    del ids
    wanted = [c for c in names if c in {"customer_id", *_RFM_NEEDS, "monetary_value"}]
    tmp = out.with_name(f".{out.name}.partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer, n, total_clv = None, 0, None
    try:
        for batch in pf.iter_batches(batch_size=_STREAM_ROWS, columns=wanted):
            table = batch.to_pandas()
            if range_ids is not None:
                table.index = range_ids[n:n + len(table)]
            elif table.index.name != "customer_id":  # the batch keeps pandas' metadata: the index may be back
                table = table.set_index("customer_id")
            table.attrs = dict(attrs)
            forecast = score(table)
            # the totals of a chunk are not the table's (and quantiles do not add up): left out of a streamed file
            forecast.attrs.pop("totals", None)
            chunk = pa.Table.from_pandas(forecast, preserve_index=True)
            if writer is None:
                writer = pq.ParquetWriter(tmp, chunk.schema)
            writer.write_table(chunk)
            n += len(forecast)
            if "clv" in forecast:
                total_clv = (total_clv or 0.0) + float(forecast["clv"].sum())
        if writer is not None:
            writer.close()
            writer = None
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return n, total_clv


def _parquet_attrs(meta: dict[bytes, bytes]) -> dict[str, Any]:
    """The ``DataFrame.attrs`` a Parquet file keeps: pandas' own key, or the "attributes" of its pandas metadata
    (where pyarrow's ``Table.from_pandas`` puts them), as ``pandas.read_parquet`` restores them."""
    import json

    if b"PANDAS_ATTRS" in meta:
        return dict(json.loads(meta[b"PANDAS_ATTRS"]))
    return dict(json.loads(meta.get(b"pandas", b"{}")).get("attributes", {}) or {})


def _range_index(meta: dict[bytes, bytes]) -> pd.RangeIndex | None:
    """The customer ids of a Parquet file written from a table whose index is a RangeIndex named customer_id."""
    import json

    pandas_meta = json.loads(meta.get(b"pandas", b"{}"))
    for ix in pandas_meta.get("index_columns", []):
        if isinstance(ix, dict) and ix.get("kind") == "range" and ix.get("name") == "customer_id":
            return pd.RangeIndex(ix["start"], ix["stop"], ix["step"], name="customer_id")
    return None


def _read_table_head(path: Path, pf: Any) -> pd.DataFrame:
    """The first rows of a Parquet RFM table, checked by the rules of a whole table (:func:`_keyed_rfm`)."""
    first = next(pf.iter_batches(batch_size=10), None)
    df = first.to_pandas() if first is not None else pd.DataFrame(columns=pf.schema_arrow.names)
    range_ids = _range_index(pf.schema_arrow.metadata or {})
    if range_ids is not None:
        df.index = range_ids[:len(df)]
    return _keyed_rfm(df, path)


def _predict_on_spark(models: Path, rfm: Path, out: Path, horizon: str, discount_rate: float, margin: float,
                      time_unit: str | None, model: str | None, interval: float | None,
                      spark_master: str | None) -> None:
    """predict --engine spark: score on the executors and write a Parquet folder."""
    from . import spark as cs

    _refuse_inputs([out], [rfm, *_model_files(models)])
    _check_horizon(horizon)
    purchase, spend = _load_models(models, model)
    session = cs.get_session(spark_master)
    with _step("scoring customers on Spark"):
        scored = cs.predictive_clv(purchase, spend, cs.read_table(rfm, session), horizon=horizon,
                                   time_unit=time_unit, discount_rate=discount_rate, margin=margin,
                                   interval=interval, random_state=0)
        scored.write.mode("error").parquet(str(out))
    _say(f"wrote the forecast to the Parquet folder {out}")


@app.command()
@_guarded
def silent(
    models: ModelDir,
    rfm: Annotated[Path, typer.Argument(help="RFM table (CSV or Parquet) of the customers to look at.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The silent customers (.csv, .parquet or .json).")],
    horizon: Horizon = "52W",
    discount_rate: Discount = 0.10,
    margin: Margin = 1.0,
    time_unit: OptTimeUnit = None,
    top_share: Annotated[float, typer.Option("--top-share", help="Share of customers, by past spend, that "
                                             "counts as valuable.")] = 0.2,
    max_probability_alive: Annotated[float, typer.Option("--max-probability-alive", help="P(alive) below "
                                                         "which a customer is probably gone.")] = 0.5,
    min_silence: Annotated[float, typer.Option("--min-silence", help="Time since the last purchase, in usual "
                                               "gaps between purchases.")] = 2.0,
    model: ModelName = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Valuable customers who are probably slipping away, with their value if retained (as in the report)."""
    import clvforecast as cf

    _check_out(out, inputs=(rfm, *_model_files(models)))
    _check_horizon(horizon)
    purchase, spend = _load_models(models, model)
    if spend is None:
        raise ValueError(f"{models} holds no gamma_gamma.json: silent customers are ranked by spend, which a "
                         "log without amounts does not have")
    table = _table_unit(_read_table(rfm), time_unit, rfm)
    with _step("scoring customers"):
        forecast = cf.predictive_clv(purchase, spend, table, horizon=horizon, discount_rate=discount_rate,
                                     margin=margin)
        found = cf.silent_customers(forecast, table, top_share=top_share,
                                    max_probability_alive=max_probability_alive, min_silence=min_silence)
    _write_table(found, out)
    a = found.attrs
    _say(f"{a['rule']}" if "rule" in a else "")
    _say(f"wrote {len(found):,} silent customers ({a.get('share_of_top', 0):.0%} of the {a.get('n_top', 0):,} "
         f"most valuable) to {out}: worth {found['clv_if_alive'].sum():,.2f} over {horizon} if retained")


@app.command()
@_guarded
@_reads_transactions
def validate(
    transactions: Annotated[Path, typer.Argument(help="Transaction log: CSV or Parquet.")],
    calibration_end: Annotated[
        str, typer.Option("--calibration-end", help="Last day of the calibration period.")
    ],
    observation_end: Annotated[
        str, typer.Option("--observation-end", help="Last day of the holdout period.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for metrics.csv/json, tables and plots.")],
    time_unit: TimeUnit = "W",
    model: ModelName = None,
    interval: Interval = None,
    quiet: Quiet = False,
    debug: Debug = False,
    read: dict[str, Any] | None = None,
) -> None:
    """Holdout evaluation: fit on the calibration period, score the holdout against the historical baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import clvforecast as cf
    from clvforecast import plotting

    _check_out_dir(out, _VALIDATE_FILES, inputs=(transactions,))
    kw = read or {}
    with _step("fitting on the calibration period and scoring the holdout"):
        ev = cf.evaluate_holdout(
            str(transactions),
            calibration_end=calibration_end,
            observation_end=observation_end,
            time_unit=time_unit,
            model=_purchase_name(model),
            interval=interval,
            random_state=0,
            **kw,
        )
    out.mkdir(parents=True, exist_ok=True)
    ev.metrics.to_csv(out / "metrics.csv", index=False)
    (out / "metrics.json").write_text(ev.metrics.to_json(orient="records", indent=1))
    ev.customers.to_csv(out / "customers.csv")
    ev.conditional_expectations.to_csv(out / "conditional_expectations.csv")
    plots = {
        "conditional_expectations": lambda ax: plotting.plot_conditional_expectations(
            ev.conditional_expectations, ax=ax
        ),
        "period_transactions": lambda ax: plotting.plot_period_transactions(ev.period_transactions, ax=ax),
    }
    if "actual_spend" in ev.customers:
        plots["gains_spend"] = lambda ax: plotting.plot_gains(ev.customers, target="spend", ax=ax)
    if interval is not None and ev.totals is not None:
        ev.totals.to_csv(out / "totals.csv")
        plots["pit"] = lambda ax: plotting.plot_pit(ev, ax=ax)
    if ev.tracking is not None:
        ev.tracking.to_csv(out / "tracking.csv")
        plots["tracking_cumulative"] = lambda ax: plotting.plot_tracking(ev.tracking, cumulative=True, ax=ax)
        plots["tracking_incremental"] = lambda ax: plotting.plot_tracking(
            ev.tracking, cumulative=False, ax=ax
        )
    with _step("drawing plots"):
        for name, draw in plots.items():
            fig, ax = plt.subplots(figsize=(7, 4))
            draw(ax)
            fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
    typer.echo(ev.summary)
    _say(f"wrote metrics, tables and {len(plots)} plots to {out}")


def _in_flags(value: Any) -> Any:
    """The summary's texts with the library's hints as flags (``duplicates='drop'`` -> ``--duplicates drop``);
    the user's own words (the settings, the title) and the tables' cells (ids, values) stay as they are, but for
    the tables' notes."""
    if isinstance(value, str):
        return _cli_words(value)
    if isinstance(value, list):
        return [_in_flags(v) for v in value]
    if isinstance(value, dict):
        out = {k: v if k in ("settings", "title", "rows") else _in_flags(v) for k, v in value.items()}
        if isinstance(value.get("rows"), list) and isinstance(value.get("columns"), list):  # a table: its notes
            notes = [i for i, c in enumerate(value["columns"]) if isinstance(c, dict) and c.get("key") == "note"]
            out["rows"] = [[_in_flags(v) if i in notes else v for i, v in enumerate(row)] for row in value["rows"]]
        return out
    return value


def _write_report(report: Any, out: Path) -> None:
    with _step("fitting models and computing the forecast"):
        report.__dict__["summary"] = _in_flags(report.summary)  # computed once; its hints read as flags here
    with _step("drawing figures and writing the report"):
        path = report.write_html(out)
    typer.echo(f"report written to {path.resolve()}")


@app.command()
@_guarded
@_reads_transactions
def report(
    transactions: Annotated[Path, typer.Argument(help="Transaction log: CSV or Parquet.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("clv_report.html"),
    calibration_end: CalEnd = None,
    observation_end: ObsEnd = None,
    time_unit: TimeUnit = "W",
    horizon: Horizon = "52W",
    discount_rate: Discount = 0.10,
    margin: Margin = 1.0,
    title: Annotated[str, typer.Option("--title", help="Report title.")] = "Customer lifetime value forecast",
    currency: Currency = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Purchase model: auto (compare BG/NBD, Pareto/NBD and MBG/NBD on the holdout "
                     "and use the best; the default with --calibration-end), bgnbd (the default without), pnbd "
                     "or mbgnbd."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", help="Level of the predictive ranges shown (0.9 = 90%); 0 for point "
                            "forecasts only."),
    ] = 0.9,
    quiet: Quiet = False,
    debug: Debug = False,
    read: dict[str, Any] | None = None,
) -> None:
    """Transactions -> self-contained HTML forecast report (with holdout validation when --calibration-end is set)."""
    from .report import ForecastReport

    _check_out(out, (".html", ".htm"), inputs=(transactions,))
    _check_horizon(horizon)
    if model is not None and model.lower() != "auto":
        model = _purchase_name(model)
    elif model is not None and not calibration_end:
        raise ValueError("--model auto compares the models on a holdout: give --calibration-end and "
                         "--observation-end, or name a model (bgnbd, pnbd, mbgnbd)")
    kw = read or {}
    rep = ForecastReport(
        str(transactions),
        calibration_end=calibration_end,
        observation_end=observation_end,
        time_unit=time_unit,
        horizon=horizon,
        discount_rate=discount_rate,
        margin=margin,
        title=title,
        currency=currency,
        model=model.lower() if model else None,
        interval=interval if interval != 0 else None,
        **kw,
    )
    _write_report(rep, out)


@app.command()
@_guarded
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the report.")] = Path(
        "reports/cdnow_report.html"
    ),
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """The main job on the bundled CDNOW sample: validate on the 1997-10..1998-06 holdout, forecast a year."""
    import clvforecast as cf

    from .report import ForecastReport

    tx = cf.load_cdnow("sample")
    typer.echo(
        f"CDNOW sample: {len(tx):,} transactions of {tx['customer_id'].nunique():,} customers, "
        f"{tx['date'].min():%Y-%m-%d} to {tx['date'].max():%Y-%m-%d}"
    )
    _check_out(out, (".html", ".htm"))
    rep = ForecastReport(
        tx,
        calibration_end="1997-09-30",
        observation_end="1998-06-30",
        time_unit="W",
        horizon="52W",
        discount_rate=0.10,
        title="CDNOW: customer lifetime value forecast",
        currency="$",  # CDNOW sold in US dollars
    )
    _write_report(rep, out)
    typer.echo(rep.summary["validation"]["text"])


def main() -> None:
    """Entry point of the ``clvforecast`` executable."""
    app()


if __name__ == "__main__":
    main()
