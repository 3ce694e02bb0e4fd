"""The built-in predict functions of the ``local`` provider's Python runtimes:
``'runtime' = 'pytorch'`` (:mod:`sluice.runtimes.pytorch`) and ``'runtime' =
'tensorflow'`` (:mod:`sluice.runtimes.tensorflow`). They run on the same worker as a
``generic-python`` model, so a hung or crashing framework is isolated the same way.

Both map INPUT columns to the model's inputs as the ONNX runtime does (one tensor per
column, by name or by position, or every column stacked into one ``[rows, columns]``
input), and the model's outputs to the OUTPUT columns (by name, by position, the columns
of one ``[rows, n]`` tensor, or a whole row as an ``ARRAY`` column); see
:mod:`sluice.runtimes._tensors`.
"""
