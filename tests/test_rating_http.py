"""The rating endpoints as a reseller's software uses them: sheets in and out, overrides, quotes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tollway.access import service as access
from tollway.access.model import Role
from tollway.demo import load_demo
from tollway.http.app import create_app
from tollway.rating.loading import TABLES
from tollway.store.database import Database


def reseller(database: Database, login: str = "north-city") -> TestClient:
    TABLES.clear()
    load_demo(database)
    _, key = access.create_api_key(database, None, node_login=login, name="software", role=Role.RESELLER_ADMIN)
    return TestClient(create_app(database), base_url="https://testserver", headers={"Authorization": f"Bearer {key}"})


def test_a_sheet_goes_in_whole_or_comes_back_with_every_bad_line(database: Database) -> None:
    client = reseller(database)
    assert client.post("/api/v1/tariffs", json={"owner": "north-city", "name": "api"}).status_code == 201
    good = "prefix,description,price,resolution\n44,UK,0.02,60\n33,France,0.018,\n"
    put = client.put("/api/v1/tariffs/north-city:api/sheet", content=good, headers={"content-type": "text/csv"})
    assert put.status_code == 200 and put.json() == {"rows": 2}
    bad = "prefix,description,price\n44,UK,0.02\nxx,Bad,1\n33,France,0.01,9\n"
    refused = client.put("/api/v1/tariffs/north-city:api/sheet", content=bad, headers={"content-type": "text/csv"})
    assert refused.status_code == 422
    assert refused.json()["reason"] == "sheet_invalid"
    assert [(p["line"], p["reason"]) for p in refused.json()["problems"]] == [
        (3, "prefix_invalid"),
        (4, "columns_invalid"),
    ]
    exported = client.get("/api/v1/tariffs/north-city:api/sheet")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[1:] == ["33,France,0.018,0,,,,0,,,,,,", "44,UK,0.02,0,,60,,0,,,,,,"]
    rows = client.get("/api/v1/tariffs/north-city:api/rates", params={"prefix": "44"}).json()["items"]
    assert [(r["prefix"], r["price"], r["resolution"]) for r in rows] == [("44", "0.020000", 60)]


def test_an_override_through_the_api_changes_the_quote_of_a_client(database: Database) -> None:
    client = reseller(database)
    london = {"number": "+442079460000", "duration": 60, "start": "2026-11-23T10:00:00Z"}
    before = client.post("/api/v1/nodes/alice/quote", json=london).json()
    assert [c["account"] for c in before["charges"]] == ["alice", "north-city"]
    assert before["charges"][0]["amount"] == "0.027688"
    put = client.put(
        "/api/v1/tariffs/north-city:retail/rates/4420", json=[{"description": "London promo", "price": "0.01"}]
    )
    assert put.status_code == 200 and put.json() == {"rows": 1}
    after = client.post("/api/v1/nodes/alice/quote", json=london).json()
    assert (after["charges"][0]["description"], after["charges"][0]["amount"]) == ("London promo", "0.010000")
    assert after["charges"][1]["amount"] == before["charges"][1]["amount"]  # north-city's own cost is unchanged


def test_a_reseller_derives_a_tariff_and_reads_it_back(database: Database) -> None:
    client = reseller(database)
    made = client.post(
        "/api/v1/tariffs",
        json={
            "owner": "north-city",
            "name": "resale",
            "base": "atlas-north:standard",
            "multiplier": "1.2",
            "addition": "0.001",
        },
    )
    assert made.status_code == 201, made.text
    assert (made.json()["base"], made.json()["multiplier"], made.json()["addition"]) == (
        "atlas-north:standard",
        "1.2",
        "0.001000",
    )
    changed = client.patch("/api/v1/tariffs/north-city:resale", json={"multiplier": "1.3", "resolution": 6})
    assert (changed.json()["multiplier"], changed.json()["resolution"]) == ("1.3", 6)
    foreign = client.post("/api/v1/tariffs", json={"owner": "north-city", "name": "x", "base": "atlas:euro"})
    assert foreign.status_code == 404  # north-city may not even know atlas's tariffs exist
