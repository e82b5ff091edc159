"""Plan definitions: the built-in plans of `models.plan`, overlaid by the operator's plans file.

The file (``CXGEAR_PLANS_FILE``, YAML or JSON) maps plan names to meter limits::

    trial: {projects: 10}          # changes one limit of a built-in plan
    team:                          # a new plan: meters not listed are unlimited
      projects: 50
      jobs: unlimited

It is read once per process, so a change applies to processes started after it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from models.plan import PLAN_LIMITS, UNLIMITED, Meter

Limit = Annotated[int, Field(ge=0)] | Literal["unlimited"]
PlanName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
_FILE = TypeAdapter(dict[PlanName, dict[Meter, Limit]])


class PlansFileError(ValueError):
    pass


@lru_cache
def load_plans(path: Path | None) -> dict[str, dict[Meter, int]]:
    plans: dict[str, dict[Meter, int]] = {
        p.value: dict(limits) for p, limits in PLAN_LIMITS.items()
    }
    if path is None:
        return plans
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        overrides = _FILE.validate_python(raw)
    except OSError as exc:
        raise PlansFileError(f"cannot read the plans file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PlansFileError(f"the plans file {path} is not YAML/JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PlansFileError(f"the plans file {path}: {where}: {first['msg']}") from None
    for name, limits in overrides.items():
        plan = plans.setdefault(name, dict.fromkeys(Meter, UNLIMITED))
        for meter, limit in limits.items():
            plan[meter] = UNLIMITED if limit == "unlimited" else limit
    return plans
