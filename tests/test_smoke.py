from tollway.balances import service as balances
from tollway.demo import load_demo
from tollway.store.database import Database


def test_demo_loads_once_and_balances(database: Database) -> None:
    assert load_demo(database) is True
    assert load_demo(database) is False
    assert balances.get_balance(database, login="alice").balance_micros == 25_000_000
