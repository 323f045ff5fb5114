"""Event ids: what makes a click or a page view delivered twice count once."""

import os
import random
import time

EVENT_ID_RANDOM = random.Random()
os.register_at_fork(after_in_child=EVENT_ID_RANDOM.seed)


def new_event_id():
    """Time-ordered (so the unique index grows at its end) and random (so unique).

    Not a secret, so a fast generator serves; a private one, seeded from the
    OS and reseeded in every forked process, so that nothing else seeding
    ``random`` can make two processes' ids collide.
    """
    return f"{time.time_ns() // 1000:013x}{EVENT_ID_RANDOM.getrandbits(48):012x}"
