"""The base of the project's pydantic models."""

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic model whose validator, serializer and schema are built on first use, not at import: a server
    imports over a hundred of them (records, results, tool outputs) and uses few before its first tool call."""

    model_config = ConfigDict(defer_build=True)
