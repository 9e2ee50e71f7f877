"""The local embedding model's own tokenizer: chunk budgets are counted in its tokens, whichever embedder is
configured, so a document chunks the same everywhere. It comes with the model's wheel (wordllama) and loads on
first use; the model itself (numpy and its weights) is not needed for it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any


@functools.cache
def local_tokenizer() -> Any:
    """The local model's tokenizer (a Hugging Face `tokenizers.Tokenizer`), read from the model's wheel."""
    import wordllama  # the model's package: heavy, so loaded with the first document to chunk
    from tokenizers import Tokenizer

    return Tokenizer.from_file(
        str(Path(wordllama.__file__).parent / "tokenizers" / "l2_supercat_tokenizer_config.json")
    )
