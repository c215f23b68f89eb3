"""The PIN digest key outlives a rotation of the installation's secret key: it is kept sealed, the rotation
re-seals it (`tollway card rekey`), and every card is still found by its PIN once the old key is gone."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.test_cards import build
from tests.test_cli import TOLLWAY
from tollway.cards import model
from tollway.cards import service as cards
from tollway.cards import store as cards_store
from tollway.cards.model import BatchTerms
from tollway.sealing import SealBroken, Sealer
from tollway.store.database import Database


def card_of(database: Database, key: bytes, pin: str) -> str | None:
    with database.reading() as connection:
        found = cards_store.find_card_by_pin(connection, model.pin_digest(key, pin))
    return None if found is None else found.serial


def test_a_rotated_secret_key_keeps_every_pin_working_once_the_key_is_resealed(database: Database) -> None:
    build(database)
    old, new = Sealer.new_key(), Sealer.new_key()
    key = cards.installation_pin_key(database, Sealer(old))
    assert key == cards.pin_key(Sealer(old))  # made once from the key in force: the digests made before match
    terms = BatchTerms(name="spring", count=2, face_value_micros=5_000_000)
    pin = cards.create_batch(database, owner_login="city", terms=terms, pin_key=key).cards[1].pin
    # The rotation: the new key in force, the old one retired; the PIN key still opens, and is re-sealed.
    rotated = Sealer(new, (old,))
    assert cards.installation_pin_key(database, rotated) == key
    assert cards.rekey_pin_key(database, rotated) == "resealed"
    # The old key dropped: the same PIN key, the same digests, the same card.
    assert cards.installation_pin_key(database, Sealer(new)) == key
    assert card_of(database, cards.installation_pin_key(database, Sealer(new)), pin) == "000000002"
    # Without the re-seal the old key could not be dropped: nothing opens it.
    with pytest.raises(SealBroken):
        cards.installation_pin_key(database, Sealer(Sealer.new_key()))


def test_the_operator_reseals_the_pin_key_with_the_cli(database: Database) -> None:
    build(database)
    old, new = Sealer.new_key(), Sealer.new_key()
    key = cards.installation_pin_key(database, Sealer(old))
    env = {
        **os.environ,
        "TOLLWAY_DATABASE_URL": database.url,
        "TOLLWAY_SECRET_KEY": new,
        "TOLLWAY_SECRET_KEYS_RETIRED": json.dumps([old]),
    }
    done = subprocess.run([TOLLWAY, "card", "rekey"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "resealed with the current secret key" in done.stderr, done.stderr
    assert cards.installation_pin_key(database, Sealer(new)) == key
