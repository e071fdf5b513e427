"""A stand-in for TensorFlow with only what the HEAR 2021 validator uses on a PyTorch model.

``hearvalidator`` 2021.0.2 (``hearvalidator/validate.py``) imports ``tensorflow as tf`` at the top
and, for a model that is a ``torch.nn.Module``, touches TensorFlow in one place only: the test
``isinstance(model, tf.Module)`` that tells a TensorFlow model from a PyTorch one. ``tf.device``
and ``tf.random`` / ``tf.math`` / ``tf.abs`` / ``tf.float32`` are reached only after that test
succeeds, i.e. only for TensorFlow models. This ``Module`` is never instantiated, so the test is
False and the validator takes its PyTorch path, unchanged.

``tests/test_hear_validator.py`` puts the folder above this one on ``PYTHONPATH`` of the
validator's own process, and only when no real TensorFlow is installed. It is not TensorFlow:
nothing else may import it.
"""


class Module:
    """Stand-in for ``tf.Module``: the class of TensorFlow models, for ``isinstance`` only."""
