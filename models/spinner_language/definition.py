"""A whole spinner definition: its steps, where it starts, and its content hash."""

from __future__ import annotations

import hashlib
import json
from typing import Final

from pydantic import Field

from models.spinner_language.fields import StrictModel
from models.spinner_language.steps import Step

__all__ = ["MAX_STEPS", "SpinnerDefinition", "definition_hash"]

MAX_STEPS: Final = 100


class SpinnerDefinition(StrictModel):
    """What a spinner does: its steps, and where each record starts."""

    # The 100-step limit is checked by validation so it is reported with a location
    # like every other problem, instead of as a parse failure.
    steps: list[Step] = Field(
        min_length=1, description="The steps, each with a unique `id` and a `type`."
    )
    start: str | None = Field(
        default=None, description="Id of the step every record starts with; the first step."
    )

    def start_id(self) -> str:
        return self.start or self.steps[0].id


def definition_hash(definition: SpinnerDefinition) -> str:
    """sha256 of the canonical JSON form: equal definitions hash equally whatever key
    order or default values they were written with."""
    canonical = json.dumps(
        definition.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
