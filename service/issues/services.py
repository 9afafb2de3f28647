"""Issue and block use cases."""

from collections.abc import Mapping
from typing import Any

from emails.blocks import get_kind


def validated_block_data(
    kind: str, data: Mapping[str, Any], previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate and clean block data for storage (rich text sanitised here, on save).

    Raises ``emails.blocks.BlockValidationError`` with French field-level errors.
    ``previous`` is the stored data being replaced, if any (agenda SEQUENCE numbers).
    """
    block_kind = get_kind(kind)
    return block_kind.updated(previous, block_kind.validate(data))
