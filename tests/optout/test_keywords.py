"""Stop and start words: a whole message, without case, accents, spaces or punctuation around
it, against a channel's lists (defaults in English and Spanish)."""

from __future__ import annotations

import pytest

from nextstep.engine.model import ALL_CHANNELS
from nextstep.engine.optout.keywords import Keywords, keywords_from, normalise

DEFAULTS = keywords_from({})


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop ",
        "\tSTOP\n",
        "Stop.",
        "¡BAJA!",
        "Bája",
        "baja",
        "BAJA ",
        "Parar",
        "no mas",
        "NO  MÁS",
        "Unsubscribe",
        "opt-out",
        "Dar de baja",
        "«stop»",
    ],
)
def test_stop_words(text: str) -> None:
    assert DEFAULTS is not None and DEFAULTS.classify(text) == "stop"


@pytest.mark.parametrize("text", ["START", " start ", "Alta", "ÁLTA", "Reanudar", "unstop"])
def test_start_words(text: str) -> None:
    assert DEFAULTS is not None and DEFAULTS.classify(text) == "start"


@pytest.mark.parametrize(
    "text",
    [
        "stop sending me the old form",
        "ok",
        "",
        "already sent them",
        "para",
        "cancelar",
        "STOP" * 30,
        "s t o p",
    ],
)
def test_other_messages_are_not_keywords(text: str) -> None:
    assert DEFAULTS is not None and DEFAULTS.classify(text) is None


def test_normalise() -> None:
    assert normalise("  ¡Bája,  AHORA! ") == "baja, ahora"


def test_a_channel_sets_its_own_words_and_answers() -> None:
    found = keywords_from(
        {
            "keywords": {
                "stop": ["Desuscribir", "Basta"],
                "start": ["Volver"],
                "scope": "all",
                "confirm": {"stop": "Hecho."},
            }
        }
    )
    assert found == Keywords(
        frozenset({"desuscribir", "basta"}), frozenset({"volver"}), "all", "Hecho.", ""
    )
    assert found.classify("STOP") is None and found.classify("basta!") == "stop"
    assert found.optout_channel("whatsapp") == ALL_CHANNELS
    assert (found.confirmation("stop"), found.confirmation("start")) == ("Hecho.", "")
    assert keywords_from({"keywords": False}) is None
    assert DEFAULTS is not None and DEFAULTS.optout_channel("whatsapp") == "whatsapp"
