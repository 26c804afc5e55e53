"""The base class of every run-config section, and the one way variants are spelled:
`tagged_union`, a pydantic discriminated union tagged by each variant's `kind`."""

from __future__ import annotations

from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Tag


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, docstrings are field docs."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


UNION_TAGS: set[str] = set()
"""Every `kind` of every `tagged_union` built so far: pydantic puts the tag into error locations
(`sampler.backend.vllm.enforce_eager`), and `shared.configio` leaves them out of its messages."""


def kind_of(variant: type[Strict]) -> str:
    """The tag of a variant: the single value of its `kind: Literal[...]` field."""
    (tag,) = get_args(variant.model_fields["kind"].annotation)
    return tag


def tagged_union(*variants: type[Strict], default: str | None = None) -> Any:
    """A discriminated union of `variants`, each tagged by its `kind` (read from the types).

    A mapping without `kind` means `default` (so `--set task.source.name=x` need not repeat the
    tag; None: `kind` is required), and a bare string is shorthand for that variant with its
    defaults: `backend: transformers` is `backend: {kind: transformers}`."""
    tags = [kind_of(v) for v in variants]
    UNION_TAGS.update(tags)
    expected = ", ".join(repr(t) for t in tags)

    def discriminate(value: object) -> str | None:
        if isinstance(value, dict):
            return value.get("kind", default)
        return getattr(value, "kind", None)

    def shorthand(value: object) -> object:
        return {"kind": value} if isinstance(value, str) else value

    union = Union[tuple(Annotated[v, Tag(t)] for v, t in zip(variants, tags))]  # type: ignore[valid-type]
    return Annotated[union, Discriminator(discriminate, custom_error_type="invalid_kind",
                                          custom_error_message=f"kind must be one of {expected}"),
                     BeforeValidator(shorthand)]
