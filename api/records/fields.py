"""Field types of the record shapes every kind writes (dataset files, POST bodies, revisions)."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api.schemas import no_nul

Slug = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", min_length=1, max_length=100)
]


MAX_TEXT = 100_000  # characters of one text field, a source's verbatim text included
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(no_nul)]


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(no_nul)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(no_nul)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(no_nul)]
Offset = Annotated[int, Field(ge=0, le=2**31 - 1)]
Year = Annotated[int, Field(ge=1900, le=2200)]
FigureIn = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvidenceIn(Strict):
    quote: Text
    start: Offset
    end: Offset
