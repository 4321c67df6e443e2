"""The model card's federation section: the sites, their rows, the data contract.

The sites are the run's roster (its opening ledger entry) and whoever was
selected; each one's rows are the example count of its last accepted update. The
data contract is read from the ledger's ``data-contract`` entry when the run has
one (the schema, the fitted preprocessing's digest, each site's profile digest,
the drift flags); a run recorded without one says so. The entry's format may
grow: fields this module does not know are summarised, not refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from accord.records import RoundRecord
from accord.report.document import Block, Facts, Note, Section, Table, not_recorded
from accord.report.inputs import CardInputs
from accord.report.text import number, setting, short

__all__ = ["federation_section"]


def _sites(inputs: CardInputs) -> list[str]:
    """Every site the run names: its roster, then whoever was selected."""
    names: dict[str, None] = {}
    opened = inputs.first("run-opened")
    roster = opened.predicate.get("roster") if opened is not None else None
    for item in roster if isinstance(roster, list) else ():
        if isinstance(item, Mapping) and isinstance(item.get("participant"), str):
            names[item["participant"]] = None
    for r in inputs.rounds:
        names.update(dict.fromkeys(r.selected))
    return list(names)


def _site_row(
    site: str, rounds: tuple[RoundRecord, ...], contract: str
) -> tuple[str, ...]:
    outcomes = [o for r in rounds for o in r.outcomes if o.participant == site]
    ok = [o for o in outcomes if o.status == "ok"]
    selected = sum(1 for r in rounds if site in r.selected)
    rows = str(ok[-1].num_examples) if ok else "not recorded (no accepted update)"
    others: dict[str, int] = {}
    for o in outcomes:
        if o.status != "ok":
            others[o.status] = others.get(o.status, 0) + 1
    other = ", ".join(f"{k} {v}" for k, v in others.items()) or "none"
    return (site, rows, f"{len(ok)}/{selected}", other, contract)


def _summary(value: object) -> str:
    """A value of a data-contract entry in a line (the format may grow)."""
    if isinstance(value, Mapping):
        parts = []
        for k, v in value.items():
            if isinstance(v, str | int | float | bool) or v is None:
                parts.append(f"{k} {short(str(v), 24)}")
            elif isinstance(v, list | tuple | Mapping):
                parts.append(f"{k}: {len(v)}")
        return "; ".join(parts) or "recorded"
    if isinstance(value, list | tuple):
        return ", ".join(short(str(v), 24) for v in value) or "none"
    return short(str(value), 80)


def _schema(schema: object) -> str:
    if not isinstance(schema, Mapping):
        return _summary(schema)
    numeric, categorical = schema.get("numeric"), schema.get("categorical")
    classes = schema.get("classes")
    parts = []
    if isinstance(numeric, list):
        parts.append(f"{len(numeric)} numeric")
    if isinstance(categorical, Mapping):
        parts.append(f"{len(categorical)} categorical")
    text = (" and ".join(parts) + " columns") if parts else _summary(schema)
    if isinstance(classes, list):
        text += f"; classes {', '.join(str(c) for c in classes)}"
    return text


def _flags(body: Mapping[str, object]) -> list[Mapping[str, object]]:
    flags = body.get("flags")
    return (
        [f for f in flags if isinstance(f, Mapping)] if isinstance(flags, list) else []
    )


def _per_site(body: Mapping[str, object]) -> dict[str, str]:
    """Each site's line: its profile's digest and drift flags, or what it holds."""
    flags = _flags(body)
    profiles = body.get("profiles")
    if isinstance(profiles, Mapping):
        out = {}
        for site, digest in profiles.items():
            n = sum(1 for f in flags if f.get("site") == site)
            drift = f"{n} drift flag{'s' if n != 1 else ''}" if n else "no drift flag"
            out[str(site)] = f"profile {short(str(digest), 17)}; {drift}"
        return out
    sites = body.get("sites")  # another layout: a mapping or list per site
    if isinstance(sites, Mapping):
        return {str(k): _summary(v) for k, v in sites.items()}
    out = {}
    for item in sites if isinstance(sites, list) else ():
        if isinstance(item, Mapping):
            name = item.get("site", item.get("participant", item.get("name")))
            if name is not None:
                out[str(name)] = _summary(
                    {k: v for k, v in item.items() if v is not name}
                )
    return out


_OWN_KEYS = ("run", "sequence", "previous", "at", "sites", "profiles", "flags")


def _contract(inputs: CardInputs) -> tuple[dict[str, str], list[Block]]:
    """Each site's data-contract line, and the contract's own blocks."""
    entry = next((e for e in reversed(inputs.ledger) if "contract" in e.kind), None)
    if entry is None:
        return {}, [
            not_recorded(
                "the ledger holds no data-contract entry: the sites' schemas and "
                "profiles were not agreed and recorded before round 1 by the accord "
                "that ran this (see docs/data.md)"
            )
        ]
    inner = entry.predicate.get("contract")
    body: Mapping[str, object] = (
        inner if isinstance(inner, Mapping) else entry.predicate
    )
    items = [("data contract", f"ledger entry {entry.sequence} ({entry.kind})")]
    for key, value in body.items():
        if key in _OWN_KEYS:
            continue
        items.append((key, _schema(value) if key == "schema" else _summary(value)))
    flags = _flags(body)
    items.append(("drift flags", str(len(flags))))
    blocks: list[Block] = [Facts(tuple(items))]
    if flags:
        columns = ("site", "column", "measure", "value", "threshold")
        rows = tuple(
            tuple(
                number(v) if isinstance(v := f.get(c), float) else str(v)
                for c in columns
            )
            for f in flags
        )
        blocks.append(Table(columns, rows, "drift flags (warnings, recorded)"))
    return _per_site(body), blocks


def federation_section(inputs: CardInputs) -> Section:
    """Dataset, partition, each site's rows and outcomes, the data contract."""
    data = inputs.config("data")
    secure = inputs.config("secure_aggregation").get("mode", "off")
    facts = Facts(
        (
            ("dataset", str(data.get("dataset", "not recorded"))),
            (
                "partition",
                setting(
                    data,
                    "partition",
                    *(["alpha"] if data.get("partition") == "dirichlet" else []),
                    "site_column",
                ),
            ),
            ("sites planned", str(data.get("sites", "not recorded"))),
            ("secure aggregation", str(secure)),
        )
    )
    per_site, contract = _contract(inputs)
    sites = _sites(inputs)
    blocks: list[Block] = [facts]
    if sites:
        missing = "not recorded" if not per_site else "none for this site"
        rows = tuple(
            _site_row(s, inputs.rounds, per_site.get(s, missing)) for s in sites
        )
        columns = ("site", "rows", "accepted/selected", "other outcomes", "contract")
        blocks.append(
            Table(columns, rows, "sites (rows: as in the last accepted update)")
        )
    else:
        blocks.append(not_recorded("no site was selected in any recorded round"))
    blocks += contract
    if any(e.kind == "preprocessing" for e in inputs.events):
        blocks.append(
            Note(
                "The deployment's federated preprocessing fit is recorded with the "
                "run (`accord runs show RUN`)."
            )
        )
    return Section("federation", "Federation", tuple(blocks))
