"""Official class orders of the DFER benchmarks.

Class lists are tuples (ordered, immutable): label index i always means ``classes[i]``. Public code
that keeps class names in a set can pair prompts with the wrong labels from one run to the next;
here the order is fixed, written into every cache and checkpoint, and compared when they meet.
"""
from __future__ import annotations


# MAFW single-label set, labels 1-11 in the release files, in the release's order.
MAFW_CLASSES: tuple[str, ...] = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
    "contempt", "anxiety", "helplessness", "disappointment",
)
# DFEW: labels 1-7 in EmoLabel_DataSplit/*.csv.
DFEW_CLASSES: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
# FERV39k: class names appear as folder names and in the split lists.
FERV39K_CLASSES: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")

DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    "mafw": MAFW_CLASSES,
    "dfew": DFEW_CLASSES,
    "ferv39k": FERV39K_CLASSES,
}

# Short descriptions of the facial actions of each emotion, written for this project (no emotion
# word in them, like MAFW's captions). Used when a model is configured with class descriptions.
CLASS_DESCRIPTIONS: dict[str, str] = {
    "anger": "lowered brows, glaring eyes, tight lips",
    "angry": "lowered brows, glaring eyes, tight lips",
    "disgust": "wrinkled nose, raised upper lip",
    "fear": "raised brows, wide eyes, stretched lips",
    "happiness": "raised cheeks, smiling mouth",
    "happy": "raised cheeks, smiling mouth",
    "neutral": "relaxed face, no expression",
    "sadness": "inner brows raised, lip corners down",
    "sad": "inner brows raised, lip corners down",
    "surprise": "raised brows, wide eyes, open mouth",
    "contempt": "one lip corner raised",
    "anxiety": "tense brows, restless eyes",
    "helplessness": "drooping eyelids, raised inner brows",
    "disappointment": "lowered gaze, pressed lips",
}


def label_index(classes: tuple[str, ...], name: str) -> int:
    """Index of ``name`` in ``classes`` (case-insensitive); ValueError listing the choices."""
    lowered = [c.lower() for c in classes]
    key = name.strip().lower()
    if key not in lowered:
        raise ValueError(f"unknown label {name!r}; classes are {list(classes)}")
    return lowered.index(key)


def class_text(name: str, descriptions: bool) -> str:
    """The words class ``name`` contributes to its prompt ("helplessness."); with ``descriptions``,
    its facial-action description too. KeyError when a description is asked for and none exists."""
    words = name.replace("_", " ")
    if descriptions:
        words = f"{words}, {CLASS_DESCRIPTIONS[name.lower()]}"
    return words + "."
