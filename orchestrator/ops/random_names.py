"""Names for services created without `--name`, in Docker's shape: `adjective_surname`.

Docker draws them from its namesgenerator; these lists are this project's own: the
surnames are people who built the networks vxswarm imitates. A name already taken is
drawn again, then given a digit, as Docker's retry does.
"""

from __future__ import annotations

import random
from collections.abc import Container

ADJECTIVES = (
    "agile", "bold", "brave", "busy", "calm", "clever", "curious", "daring", "eager",
    "elated", "fervent", "focused", "gentle", "happy", "hopeful", "jolly", "keen",
    "kind", "lucid", "merry", "modest", "nimble", "patient", "quiet", "relaxed",
    "serene", "sharp", "steady", "swift", "tender", "upbeat", "vivid", "witty", "zealous",
)  # fmt: skip

SURNAMES = (
    "baran", "boggs", "cerf", "clark", "davies", "deering", "dijkstra", "estrin", "floyd",
    "hopper", "jacobson", "kahn", "kleinrock", "lamport", "liskov", "metcalfe",
    "mockapetris", "perlman", "postel", "pouzin", "ritchie", "saltzer", "shannon",
    "thacker", "thompson", "turing", "zhang",
)  # fmt: skip


def random_name(taken: Container[str], rng: random.Random | None = None) -> str:
    """A free `adjective_surname` (with a digit after it once ten draws collide)."""
    rng = rng or random.SystemRandom()
    for attempt in range(100):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if attempt >= 10:
            name += str(rng.randint(0, 9))
        if name not in taken:
            return name
    raise RuntimeError("no free generated service name after 100 draws")
