"""Built-in source adapters; importing this package registers them (see :mod:`ovr.data.registry`).

- :mod:`.text`: cold-start text sources (OpenR1-Math-220k, MATH, NuminaMath).
- :mod:`.multimodal`: multimodal RL sources (Geometry3K, ChartQA, ScienceQA).
- :mod:`.evalsets`: text evaluation benchmarks (MATH500, AIME, AMC, GSM8K).
- :mod:`.visual_evalsets`: visual evaluation benchmarks (MathVision, MathVerse, MathVista, We-Math,
  DynaMath, LogicVista).
"""

from ovr.data.adapters import evalsets, multimodal, text, visual_evalsets  # noqa: F401
