"""Writes the demo's product-review sentiment data (train.jsonl, test.jsonl), reproducibly.

The sentences are composed from short templates so the classes are learnable from wording alone,
which is what a one-minute CPU fine-tune can show; rerun with `python bot/demo_data/generate.py`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PRODUCTS = ["headphones", "blender", "backpack", "keyboard", "phone case", "coffee maker", "desk lamp", "tent",
            "running shoes", "kettle", "monitor", "vacuum", "jacket", "water bottle", "router", "camera bag"]
POSITIVE = ["works perfectly", "is excellent value", "exceeded my expectations", "is sturdy and well made",
            "arrived quickly and looks great", "is a joy to use", "is the best purchase this year",
            "feels premium", "does exactly what it promises", "is comfortable and reliable"]
NEGATIVE = ["broke after two days", "is a waste of money", "stopped working within a week", "feels cheap and flimsy",
            "arrived damaged", "is a disappointment", "never worked properly", "is noisy and unreliable",
            "fell apart quickly", "was nothing like the pictures"]
POSITIVE_TAILS = ["Highly recommended.", "Would buy again.", "Five stars.", "I love it.", "Great service too."]
NEGATIVE_TAILS = ["Avoid it.", "I want a refund.", "One star.", "Very annoyed.", "Returning it today."]
OPENERS = ["Honestly, the", "The", "My new", "This", "Our"]


def review(rng: random.Random, positive: bool) -> dict[str, str]:
    phrases, tails = (POSITIVE, POSITIVE_TAILS) if positive else (NEGATIVE, NEGATIVE_TAILS)
    text = f"{rng.choice(OPENERS)} {rng.choice(PRODUCTS)} {rng.choice(phrases)}. {rng.choice(tails)}"
    return {"review": text, "sentiment": "positive" if positive else "negative"}


def main() -> None:
    rng = random.Random(7)
    here = Path(__file__).parent
    for name, count in (("train.jsonl", 320), ("test.jsonl", 80)):
        rows = [review(rng, i % 2 == 0) for i in range(count)]
        rng.shuffle(rows)
        (here / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


if __name__ == "__main__":
    main()
