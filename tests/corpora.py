"""Small corpora the tests make: words drawn from a short lexicon (not a test module).

    from corpora import words   # tests/ is on sys.path under pytest (no __init__.py)
"""

import numpy as np

LEXICON = ("the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away")


def words(chars, seed=0, lexicon=LEXICON):
    """`chars` characters of space-separated words from `lexicon` (no 'b', 'y', 'z'...)."""
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(list(lexicon), size=chars // 3))[:chars]
