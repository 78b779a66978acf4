"""Argument checks shared by the layers, cells, models and steps, in Keras's message form.

One home for each check, so that every module names a bad argument the same way:
"Received an invalid value for argument `units`, expected a positive integer, got 0."
"""

import numbers


def positive_integer(name, value, error=ValueError):
    """`value` as an int if it is a positive integer (a NumPy integer too), else `error`.

    A bool is refused although Python counts it an int: `units=True` is a mistake.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise error(f"Received an invalid value for argument `{name}`, expected a "
                    f"positive integer, got {value!r}.")
    return int(value)
