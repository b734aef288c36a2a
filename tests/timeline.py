"""Tables that live in time, written as a user's files would be: what the safe-retraining tests
(tests/integration/test_safe_retraining.py) give `ml-project init` and then change month by
month. Platform tests: no problem of the project's is involved.

`orders(months)`: one row per order with an ISO-8601 UTC timestamp (`placed_at`), a year
column, a channel the model reads, counts and distances that are never negative, a currency
that never varies (so init leaves it unread), a free-text note with gaps, and a skewed,
non-negative label `amount` that depends on them. `customers()` + `visits()`: two tables
joined by `customer_id`, the second holding the columns a served model must also guard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHANNELS = ("web", "store", "phone")
SEGMENTS = ("retail", "trade", "public")
NOTES = ("gift", "urgent", "call first", "leave at door", "fragile")


def month_starts(first: str, count: int) -> list[pd.Timestamp]:
    """`count` consecutive month starts from `first` (YYYY-MM), in UTC."""
    start = pd.Timestamp(f"{first}-01", tz="UTC")
    return [start + pd.DateOffset(months=index) for index in range(count)]


def orders(months: list[pd.Timestamp], *, rows_per_month: int = 500, seed: int = 0) -> pd.DataFrame:
    """Orders placed in `months`; keys are unique across every month this is called with."""
    parts = []
    for start in months:
        rng = np.random.default_rng([seed, start.year, start.month])
        end = start + pd.DateOffset(months=1)
        seconds = rng.integers(0, int((end - start).total_seconds()), rows_per_month)
        placed = (start + pd.to_timedelta(np.sort(seconds), unit="s")).tz_convert("UTC")
        number = (start.year * 12 + start.month) * 100_000 + np.arange(rows_per_month)
        channel = rng.choice(CHANNELS, rows_per_month, p=[0.6, 0.3, 0.1])
        basket = rng.poisson(3, rows_per_month) + 1
        distance = rng.gamma(2.0, 8.0, rows_per_month).round(2)
        hour = placed.hour.to_numpy()
        effect = pd.Series(channel).map({"web": 0.0, "store": 0.4, "phone": -0.3}).to_numpy()
        log_amount = (
            2.5 + 0.35 * np.log(basket) + 0.01 * distance + effect
            + 0.2 * np.sin(hour / 24 * 2 * np.pi) + rng.normal(0, 0.25, rows_per_month)
        )  # fmt: skip
        note = rng.choice(NOTES, rows_per_month).astype(object)
        note[rng.random(rows_per_month) < 0.4] = None
        parts.append(
            pd.DataFrame(
                {
                    "order_id": number,
                    "placed_at": placed.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "year": placed.year,
                    "channel": channel,
                    "basket": basket,
                    "distance_km": distance,
                    "currency": "EUR",
                    "note": note,
                    "amount": np.exp(log_amount).round(2),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def customers(count: int = 400, *, seed: int = 0) -> pd.DataFrame:
    """A dimension table: one row per customer_id, with an age and a segment."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, count + 1) * 3 + 500,
            "age": rng.integers(18, 90, count),
            "segment": rng.choice(SEGMENTS, count),
        }
    )


def visits(people: pd.DataFrame, rows: int = 3000, *, seed: int = 1) -> pd.DataFrame:
    """A fact table: one row per visit, with its customer and whether it ended in a purchase
    (`bought`, yes/no), which depends on the customer's age and segment as much as on the visit."""
    rng = np.random.default_rng(seed)
    who = people.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    minutes = rng.gamma(2.0, 4.0, rows).round(1)
    pages = rng.poisson(5, rows) + 1
    segment = who["segment"].map({"retail": 0.0, "trade": 1.2, "public": -0.8}).to_numpy()
    logit = -1.0 + 0.08 * minutes + 0.1 * pages + segment - 0.03 * (who["age"].to_numpy() - 50)
    bought = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "visit_id": np.arange(rows) + 10_000,
            "customer_id": who["customer_id"].to_numpy(),
            "minutes": minutes,
            "pages": pages,
            "bought": np.where(bought, "yes", "no"),
        }
    )
