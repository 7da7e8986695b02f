"""What the libraries psyprobe loads print, turned into log records instead of screen output.

Left alone, transformers, datasets and the Hugging Face hub client write warnings and tqdm bars
straight to the terminal, between psyprobe's own progress lines: a DPO study printed screenfuls
of them. Routed here, they are records of Python's ``logging``: the command line keeps them in
the run's run.log (``progress.py``), and a library user's own logging decides what to show
(with none configured, Python prints warnings on standard error as usual).
"""

from __future__ import annotations

from functools import cache, partial


@cache  # once per process: the libraries' settings are global
def route_library_output() -> None:
    """Call before transformers loads or converts a model, or a trainer starts."""
    import datasets
    from huggingface_hub.utils.tqdm import disable_progress_bars
    from transformers import modeling_gguf_pytorch_utils as gguf
    from transformers.utils import logging as transformers_logging

    for library in (transformers_logging, datasets.logging):
        library.disable_progress_bar()  # the loading's and the dataset maps' bars
        library.enable_propagation()  # records reach the root logger…
    transformers_logging.disable_default_handler()  # …and not the terminal directly
    disable_progress_bars()
    # The GGUF conversion calls tqdm itself, past transformers' switch: its bar, turned off.
    gguf.tqdm = partial(gguf.tqdm, disable=True)  # type: ignore[attr-defined]
