"""Parameter grids for sweeps: parse the CLI's specs, expand the cartesian product and
keep only the combinations the strategy accepts.

Spec syntax (one spec per parameter, as typed on the command line):

* ``fast=5:50:5``: an inclusive range ``start:stop:step`` (5, 10, ..., 50). The values
  are ints when all three numbers are written as ints, floats otherwise; float ranges
  are stepped in decimal arithmetic (``0.1:0.3:0.1`` gives 0.1, 0.2, 0.3 exactly as
  written, where repeated float addition would give 0.30000000000000004 and might drop
  the end point);
* ``fast=5,10,20``: an explicit list (a single value is a one-element list);
* ``allow_short=true,false``: booleans, as pydantic reads them (true/false, yes/no, 1/0).

Two kinds of problem are told apart on purpose:

* a malformed spec, an unknown parameter name or a value that its own field refuses
  (``fast=1`` when fast must be >= 2, ``fast=abc``) is a mistake in what the user typed:
  a `ParameterError` naming the spec, before anything runs;
* a combination refused by a rule across fields (``fast >= slow`` in ``sma_cross``) is a
  normal part of sweeping a rectangular grid: it is skipped and counted, and the sweep
  reports how many. Only a grid where *every* combination is refused is an error.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException, InvalidOperation
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from algotrendy.errors import ParameterError
from algotrendy.strategies.base import Strategy

# A grid as values per parameter name, after parsing.
Grid = dict[str, list[Any]]
# What callers may pass: CLI specs ("fast=5:50:5"), or a mapping name -> spec string or
# explicit values (the API and Python callers).
GridInput = Sequence[str] | Mapping[str, str | Sequence[Any]]

MAX_COMBINATIONS = 1_000_000
"""A larger product is almost certainly a typo (a step of 0.0001) and would exhaust memory
before the first backtest runs."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")
# Float grid values must survive the conversion to float; Python refuses to parse ints
# of more than 4300 digits at all (sys.get_int_max_str_digits), so cap those too.
_FLOAT_MAX = Decimal(sys.float_info.max)
_MAX_INT_DIGITS = 30
_MAX_SKIP_EXAMPLES = 5


@dataclass(frozen=True)
class ParamGrid:
    """The valid combinations of a grid for one strategy.

    `combos` hold only the swept parameters (validated and typed: ints, floats, bools),
    the others take the strategy's defaults when run. `skipped_examples` keeps the first
    few reasons a combination was refused, for the user to see why.
    """

    strategy: str
    names: list[str]
    values: Grid
    combos: list[dict[str, Any]]
    n_total: int
    n_skipped: int
    skipped_examples: list[str] = field(default_factory=list)

    @property
    def n_combos(self) -> int:
        return len(self.combos)


def _parse_number(text: str, spec: str) -> int | Decimal:
    t = text.strip()
    if _INT.match(t):
        if len(t.lstrip("+-")) > _MAX_INT_DIGITS:
            raise ParameterError(f"grid spec {_cut(spec)!r}: {_cut(t)!r} is out of range")
        return int(t)
    try:
        d = Decimal(t)
    except InvalidOperation:
        raise ParameterError(f"grid spec {_cut(spec)!r}: {_cut(t)!r} is not a number") from None
    if not d.is_finite():
        raise ParameterError(f"grid spec {_cut(spec)!r}: {_cut(t)!r} is not a finite number")
    if d.copy_abs() > _FLOAT_MAX:  # copy_abs: no context, so no Overflow signal
        raise ParameterError(f"grid spec {_cut(spec)!r}: {_cut(t)!r} is out of range")
    return d


def _cut(text: str) -> str:
    """Echo at most 60 characters of what the user typed."""
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_range(body: str, spec: str) -> list[Any]:
    parts = body.split(":")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ParameterError(
            f"grid spec {spec!r}: a range is start:stop:step with all three given "
            "(e.g. fast=5:50:5)"
        )
    start, stop, step = (_parse_number(p, spec) for p in parts)
    if step <= 0:
        raise ParameterError(f"grid spec {spec!r}: step must be > 0 (got {parts[2].strip()})")
    if stop < start:
        raise ParameterError(
            f"grid spec {spec!r}: stop ({parts[1].strip()}) is below start ({parts[0].strip()})"
        )
    try:
        count = int((Decimal(stop) - Decimal(start)) // Decimal(step)) + 1
    except DecimalException:
        # The quotient needs more digits than the decimal context has (28), or an
        # exponent past its limits (a step of 1e-100): far more values than the cap.
        count = MAX_COMBINATIONS + 1
    if count > MAX_COMBINATIONS:
        raise ParameterError(
            f"grid spec {_cut(spec)!r}: more than {MAX_COMBINATIONS} values; use a coarser step"
        )
    all_int = all(isinstance(v, int) for v in (start, stop, step))
    if all_int:
        return [int(start) + k * int(step) for k in range(count)]
    d0, ds = Decimal(start), Decimal(step)
    return [float(d0 + k * ds) for k in range(count)]


def _parse_scalar(text: str) -> Any:
    """Numbers become int/float so the ranked frame has numeric columns; anything else
    stays a string for the field's own validator to read (booleans, enums)."""
    t = text.strip()
    if _INT.match(t):
        return int(t) if len(t.lstrip("+-")) <= _MAX_INT_DIGITS else t
    try:
        d = Decimal(t)
    except InvalidOperation:
        return t
    return float(d) if d.is_finite() and d.copy_abs() <= _FLOAT_MAX else t


def parse_spec(spec: str) -> tuple[str, list[Any]]:
    """``"fast=5:50:5"`` -> ``("fast", [5, 10, ..., 50])``; see the module docstring."""
    if spec.count("=") != 1:
        raise ParameterError(
            f"grid spec {spec!r}: expected name=start:stop:step or name=v1,v2,... "
            "(e.g. fast=5:50:5, allow_short=true,false)"
        )
    name, body = (s.strip() for s in spec.split("="))
    if not _NAME.match(name):
        raise ParameterError(f"grid spec {spec!r}: {name!r} is not a parameter name")
    if not body:
        raise ParameterError(f"grid spec {spec!r}: no values after '='")
    if ":" in body:
        return name, _parse_range(body, spec)
    items = body.split(",")
    if any(not i.strip() for i in items):
        raise ParameterError(f"grid spec {spec!r}: empty value in the list")
    return name, [_parse_scalar(i) for i in items]


def parse_grid(grid: GridInput) -> Grid:
    """Specs or a mapping -> values per name, in the order given (duplicates refused)."""
    out: Grid = {}

    def put(name: str, values: list[Any], spec: str) -> None:
        if name in out:
            raise ParameterError(f"grid: parameter {name!r} is given twice ({spec!r})")
        if not values:
            raise ParameterError(f"grid: parameter {name!r} has no values")
        out[name] = values

    if isinstance(grid, Mapping):
        for name, values in grid.items():
            if isinstance(values, str):
                n, v = parse_spec(f"{name}={values}")
                put(n, v, f"{name}={values}")
            elif isinstance(values, Sequence):
                put(str(name), list(values), f"{name}={values!r}")
            else:  # a scalar: one value
                put(str(name), [values], f"{name}={values!r}")
        return out
    if isinstance(grid, str):
        raise ParameterError(
            f"grid: expected a list of specs, got the single string {grid!r} (wrap it in a list)"
        )
    for spec in grid:
        n, v = parse_spec(spec)
        put(n, v, spec)
    return out


def _field_adapters(strategy: Strategy[Any]) -> dict[str, TypeAdapter[Any]]:
    out: dict[str, TypeAdapter[Any]] = {}
    for name, f in strategy.Params.model_fields.items():
        ann: Any = f.annotation
        out[name] = TypeAdapter(Annotated[ann, *f.metadata]) if f.metadata else TypeAdapter(ann)
    return out


def _dedupe(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if not any(type(v) is type(s) and v == s for s in seen):
            seen.append(v)
    return seen


def expand_grid(strategy: Strategy[Any], grid: GridInput | Grid) -> ParamGrid:
    """Validate each value against its field, then each combination against the strategy.

    Raises ParameterError for an unknown name, a value its field refuses, a product
    larger than `MAX_COMBINATIONS` or a grid with no valid combination.
    """
    values = parse_grid(grid)
    adapters = _field_adapters(strategy)
    typed: Grid = {}
    for name, raw in values.items():
        if name not in adapters:
            known = ", ".join(adapters)
            raise ParameterError(f"grid: {strategy.name} has no parameter {name!r}; known: {known}")
        vals = []
        for v in raw:
            try:
                vals.append(adapters[name].validate_python(v))
            except ValidationError as exc:
                detail = "; ".join(e["msg"] for e in exc.errors())
                raise ParameterError(
                    f"grid: {strategy.name} parameter {name!r}: value {v!r} refused ({detail})"
                ) from None
        typed[name] = _dedupe(vals)
    names = list(typed)
    n_total = 1
    for vals in typed.values():
        n_total *= len(vals)
    if n_total > MAX_COMBINATIONS:
        raise ParameterError(
            f"grid: {n_total} combinations, more than {MAX_COMBINATIONS}; use coarser steps"
        )
    combos: list[dict[str, Any]] = []
    examples: list[str] = []
    n_skipped = 0
    for prod in itertools.product(*(typed[n] for n in names)):
        combo = dict(zip(names, prod, strict=True))
        try:
            strategy.params(combo)
        except ParameterError as exc:
            n_skipped += 1
            if len(examples) < _MAX_SKIP_EXAMPLES:
                examples.append(str(exc))
            continue
        combos.append(combo)
    if not combos:
        first = f"; e.g. {examples[0]}" if examples else ""
        raise ParameterError(
            f"grid: none of the {n_total} combinations is valid for {strategy.name}{first}"
        )
    return ParamGrid(
        strategy=strategy.name,
        names=names,
        values=typed,
        combos=combos,
        n_total=n_total,
        n_skipped=n_skipped,
        skipped_examples=examples,
    )
