"""A fixed, seeded prompt set: the same prompts on every run and for every system."""

from __future__ import annotations

import random

WORDS = (
    "river mountain engine garden window market signal harbor lantern meadow copper "
    "violin orbit canyon pepper theory ladder museum falcon glacier tunnel compass "
    "velvet thunder quartz island journal rocket basket mirror prairie anchor saddle "
    "beacon cactus dolphin ember fossil harvest igloo jasmine kettle lagoon marble"
).split()
QUESTIONS = (
    "Explain how a {} works.",
    "Write a short poem about a {}.",
    "Give three facts about the {}.",
    "Describe a {} to a child.",
    "Why is the {} important?",
)


def short_prompts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(QUESTIONS).format(rng.choice(WORDS)) for _ in range(count)]


def long_text(words: int, rng: random.Random) -> str:
    sentences: list[str] = []
    while sum(len(s.split()) for s in sentences) < words:
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + ".")
    return " ".join(sentences)


def long_prompts(count: int, seed: int = 0, words: int = 780) -> list[str]:
    """About 1,000 tokens each (SmolLM2's tokenizer: ~1.3 tokens per word here)."""
    rng = random.Random(seed)
    return [
        long_text(words, rng) + "\n\nSummarize the text above in one sentence."
        for _ in range(count)
    ]
