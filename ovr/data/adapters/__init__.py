"""Built-in source adapters; importing this package registers them (see :mod:`ovr.data.registry`).

- :mod:`.text`: cold-start text sources (OpenR1-Math-220k, MATH, NuminaMath).
- :mod:`.multimodal`: multimodal RL sources (Geometry3K, ChartQA, ScienceQA).
- :mod:`.evalsets`: evaluation benchmarks (MATH500, AIME, MathVision, MathVerse, MathVista).
"""

from ovr.data.adapters import evalsets, multimodal, text  # noqa: F401
