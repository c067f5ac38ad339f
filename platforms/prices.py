"""What compute costs: the shipped price table, a team's overrides, and a refresh from Azure's Retail Prices API.

The table (`platforms/prices.yaml`) lists pay-as-you-go list prices per VM size (an instance-hour) and per
serverless model (1,000 tokens), with the region, the currency and the date they were read, so every
estimate can say what it is based on. A team's file (FMBOT_PRICES) overrides the entries it names and may
add sizes. `refresh` asks the public, unauthenticated Retail Prices API
(https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices) for the sizes the
table lists, only when asked to and only where the machine reaches it; a size the API prices only as Spot,
Low Priority, DevTest or a reservation keeps its table price, since none of those is what a job is billed.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from platforms.errors import FmbotError

SHIPPED = Path(__file__).with_name("prices.yaml")
RETAIL_PRICES_URL = "https://prices.azure.com/api/retail/prices"
_NOT_LIST_PRICE = ("spot", "low priority")


class PricesError(FmbotError):
    """A price table that cannot be read, or a refresh that failed."""


class TokenPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float
    output: float


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    read: str
    region: str = "eastus"
    currency: str = "USD"
    vm_sizes: dict[str, float] = {}
    serverless: dict[str, TokenPrice] = {}

    def hourly(self, size: str | None) -> float | None:
        """The price of an instance-hour of `size` (VM size names are case-insensitive in Azure)."""
        if not size:
            return None
        wanted = size.lower()
        return next((price for name, price in self.vm_sizes.items() if name.lower() == wanted), None)

    def tokens(self, model: str) -> TokenPrice | None:
        name = model.split(":")[0].lower()
        return next((price for key, price in self.serverless.items() if key.lower() == name), None)

    def merged(self, override: dict[str, Any]) -> PriceTable:
        """This table with a team's file applied: its sizes and models replace or add to ours."""
        data = self.model_dump()
        for key in ("vm_sizes", "serverless"):
            data[key] = {**data[key], **(override.get(key) or {})}
        data.update({k: v for k, v in override.items() if k not in ("vm_sizes", "serverless")})
        return PriceTable.model_validate(data)


def _read(path: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise PricesError(f"FMBOT_PRICES names {path}, which does not exist",
                          hint="Fix the path, or unset FMBOT_PRICES to use the shipped price table", field="FMBOT_PRICES") from None
    except yaml.YAMLError as exc:
        raise PricesError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}",
                          hint="See platforms/prices.yaml for the format", field="FMBOT_PRICES") from None


@functools.lru_cache(maxsize=8)
def load_prices(override: Path | None = None) -> PriceTable:
    """The shipped table with the team's file (if any) applied; a broken file stops start-up with the reason."""
    table = PriceTable.model_validate(_read(SHIPPED))
    if override is None:
        return table
    try:
        return table.merged(_read(Path(override)))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise PricesError(f"{override}: {where}: {error['msg']}", hint="See platforms/prices.yaml for the format",
                          field="FMBOT_PRICES") from None


def list_price(items: list[dict[str, Any]], currency: str) -> float | None:
    """The pay-as-you-go price among one size's Retail Prices items: type Consumption, in `currency`,
    not a Spot or Low Priority meter, and Linux (a product named "… Windows" includes the licence)."""
    prices = [item["retailPrice"] for item in items
              if item.get("type") == "Consumption" and item.get("currencyCode") == currency
              and not any(word in str(item.get("meterName", "")).lower() for word in _NOT_LIST_PRICE)
              and not str(item.get("productName", "")).endswith("Windows")
              and item.get("unitOfMeasure") == "1 Hour"]
    return min(prices) if prices else None


def refresh(table: PriceTable, *, url: str = RETAIL_PRICES_URL, timeout: float = 10.0) -> tuple[PriceTable, list[str]]:
    """The table with each VM size's price read again from the Retail Prices API (following its
    NextPageLink pages), dated today; and, per size, what was not found. Raises PricesError when the API
    cannot be reached, so a refresh never half-writes a table."""
    import requests

    prices, missing = dict(table.vm_sizes), []
    for size in table.vm_sizes:
        query = (f"serviceName eq 'Virtual Machines' and armRegionName eq '{table.region}' "
                 f"and armSkuName eq '{size}' and priceType eq 'Consumption'")
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        params: dict[str, str] | None = {"currencyCode": table.currency, "$filter": query}
        try:
            while next_url:
                answer = requests.get(next_url, params=params, timeout=timeout)
                answer.raise_for_status()
                page = answer.json()
                items += page.get("Items", [])
                next_url, params = page.get("NextPageLink"), None
        except (requests.RequestException, ValueError) as exc:
            raise PricesError(f"the Retail Prices API could not be read ({exc.__class__.__name__}: {exc})",
                              hint="Refresh from a machine that reaches prices.azure.com, or edit FMBOT_PRICES by hand") from None
        price = list_price(items, table.currency)
        if price is None:
            missing.append(f"{size}: no pay-as-you-go {table.currency} price in {table.region} (kept {prices[size]:g})")
        else:
            prices[size] = price
    refreshed = table.model_copy(update={
        "vm_sizes": prices, "read": datetime.now(UTC).date().isoformat(),
        "source": f"Azure Retail Prices API ({url}), {table.region}, {table.currency}"})
    return refreshed, missing


def write(table: PriceTable, path: Path) -> None:
    path.write_text(yaml.safe_dump(table.model_dump(), sort_keys=False))
