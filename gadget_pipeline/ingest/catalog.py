"""What the shop sells and where it ships: a small, plausible gadget catalog and address book.

Prices are list-price ranges in USD per product (a charger is never 491); an order's unit price is a
price point inside its product's range, so discounts and price changes show up in the data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

CURRENCY = "USD"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Product:
    name: str
    brand: str
    category: str
    min_price: Decimal
    max_price: Decimal
    max_quantity: int  # per order line: nobody buys five laptops in one order, five cables is normal
    popularity: int  # relative weight of the product among orders

    def __post_init__(self) -> None:
        if not Decimal("0") < self.min_price <= self.max_price:
            raise ValueError(f"{self.name}: bad price range {self.min_price}..{self.max_price}")


def _product(name: str, brand: str, category: str, low: str, high: str, max_quantity: int,
             popularity: int) -> Product:
    return Product(name, brand, category, Decimal(low), Decimal(high), max_quantity, popularity)


CATALOG: tuple[Product, ...] = (
    _product("iPhone 15", "Apple", "smartphones", "699.00", "899.00", 2, 30),
    _product("iPhone 15 Pro", "Apple", "smartphones", "899.00", "1199.00", 1, 20),
    _product("Galaxy S24", "Samsung", "smartphones", "699.00", "859.99", 2, 25),
    _product("Pixel 8", "Google", "smartphones", "549.00", "699.00", 2, 15),
    _product("MacBook Air 13", "Apple", "laptops", "999.00", "1399.00", 1, 14),
    _product("XPS 13", "Dell", "laptops", "899.00", "1499.00", 1, 8),
    _product("ThinkPad X1 Carbon", "Lenovo", "laptops", "1299.00", "2099.00", 1, 6),
    _product("iPad Air", "Apple", "tablets", "549.00", "749.00", 2, 12),
    _product("Galaxy Tab S9", "Samsung", "tablets", "649.00", "849.99", 1, 7),
    _product("AirPods Pro", "Apple", "audio", "189.00", "249.00", 2, 35),
    _product("WH-1000XM5", "Sony", "audio", "279.99", "399.99", 1, 18),
    _product("QuietComfort Ultra Headphones", "Bose", "audio", "329.00", "429.00", 1, 10),
    _product("Apple Watch Series 9", "Apple", "wearables", "329.00", "429.00", 1, 16),
    _product("Galaxy Watch6", "Samsung", "wearables", "229.99", "299.99", 1, 9),
    _product("Fitbit Charge 6", "Google", "wearables", "119.95", "159.95", 2, 11),
    _product("Nano II 65W USB-C Charger", "Anker", "accessories", "29.99", "49.99", 4, 40),
    _product("20W USB-C Power Adapter", "Apple", "accessories", "15.99", "19.99", 4, 45),
    _product("PowerCore 10000 Power Bank", "Anker", "accessories", "19.99", "29.99", 3, 30),
    _product("BoostCharge USB-C Cable 2m", "Belkin", "accessories", "9.99", "19.99", 5, 50),
    _product("MagSafe Charger", "Apple", "accessories", "35.00", "49.00", 3, 25),
    _product("PlayStation 5", "Sony", "gaming", "449.99", "499.99", 1, 10),
    _product("Nintendo Switch OLED", "Nintendo", "gaming", "319.99", "349.99", 1, 12),
    _product("Xbox Series X", "Microsoft", "gaming", "449.99", "499.99", 1, 7),
    _product("Echo Dot (5th Gen)", "Amazon", "smart home", "22.99", "49.99", 3, 22),
    _product("Nest Learning Thermostat", "Google", "smart home", "199.99", "279.99", 1, 6),
    _product("HERO12 Black", "GoPro", "cameras", "299.99", "399.99", 1, 5),
)

# (city, state, postal code prefix): shipping addresses are US-only because prices are in USD.
CITIES: tuple[tuple[str, str, str], ...] = (
    ("New York", "NY", "100"), ("Brooklyn", "NY", "112"), ("Los Angeles", "CA", "900"),
    ("San Francisco", "CA", "941"), ("San Diego", "CA", "921"), ("Chicago", "IL", "606"),
    ("Houston", "TX", "770"), ("Austin", "TX", "787"), ("Dallas", "TX", "752"), ("Phoenix", "AZ", "850"),
    ("Philadelphia", "PA", "191"), ("Seattle", "WA", "981"), ("Denver", "CO", "802"), ("Boston", "MA", "021"),
    ("Atlanta", "GA", "303"), ("Miami", "FL", "331"), ("Portland", "OR", "972"), ("Minneapolis", "MN", "554"),
    ("Nashville", "TN", "372"), ("Raleigh", "NC", "276"),
)
STREETS: tuple[str, ...] = (
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Park Ave", "Pine St", "Elm St", "Washington Blvd",
    "Lake Shore Dr", "Sunset Blvd", "Broadway", "Market St", "Highland Ave", "River Rd", "Hillcrest Dr",
)


def price_point(product: Product, rng: random.Random) -> Decimal:
    """A shelf price inside the product's range, mostly ending in .99 like real price tags."""
    low_cents = int(product.min_price / CENT)
    high_cents = int(product.max_price / CENT)
    cents = rng.randint(low_cents, high_cents)
    ending = rng.choices((99, 0, 49), weights=(70, 20, 10))[0]
    snapped = cents - cents % 100 + ending
    if not low_cents <= snapped <= high_cents:
        snapped = cents
    return (Decimal(snapped) * CENT).quantize(CENT)


@dataclass(frozen=True)
class Customer:
    customer_id: str
    street: str
    city: str
    state: str
    postal_code: str

    def shipping_address(self) -> dict[str, str]:
        return {"street": self.street, "city": self.city, "state": self.state,
                "postal_code": self.postal_code, "country": "US"}


def make_customers(count: int, rng: random.Random) -> tuple[Customer, ...]:
    """A fixed customer base (same seed, same people), so repeat buyers appear in the data."""
    customers = []
    for number in range(1, count + 1):
        city, state, zip_prefix = rng.choice(CITIES)
        street = f"{rng.randint(1, 9899)} {rng.choice(STREETS)}"
        postal_code = f"{zip_prefix}{rng.randint(0, 99):02d}"
        customers.append(Customer(f"CUST-{number:06d}", street, city, state, postal_code))
    return tuple(customers)
