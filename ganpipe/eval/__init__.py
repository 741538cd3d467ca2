"""Evaluation of trained generators: sample-quality metrics on feature and prediction arrays.

``metrics`` is pure NumPy; extracting the features (an Inception network, a data-set classifier)
is the caller's job, so the formulas can be tested without a model.
"""
