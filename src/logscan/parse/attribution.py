"""Who a failure is attributed to: validated addresses, and the Cloudflare header rule.

``CF-Connecting-IP`` is believed only when the direct client (``$remote_addr``) is a trusted
proxy (the local reverse proxy's networks, Cloudflare's ranges). A client reaching the origin
directly can write any header: its line is attributed to its own address and flagged ``spoofed``.
Addresses are validated with ``ipaddress`` once per distinct value, never per line.
"""

from __future__ import annotations

import polars as pl

from ..addresses import NetworkSet, parse_address

_CACHE_MAX = 200_000
_cache: dict[tuple[str, int, int], tuple[str | None, bool, bool]] = {}


def _classify(raw: str, trusted: NetworkSet, ignored: NetworkSet) -> tuple[str | None, bool, bool]:
    key = (raw, id(trusted), id(ignored))
    hit = _cache.get(key)
    if hit is None:
        addr = parse_address(raw)
        hit = (
            None if addr is None else addr.compressed,
            addr is not None and addr in trusted,
            addr is not None and addr in ignored,
        )
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = hit
    return hit


def _lookup(values: pl.Series, trusted: NetworkSet, ignored: NetworkSet) -> pl.DataFrame:
    """One row per distinct raw address: normalised form (null if invalid) and memberships.

    Distinct addresses only (a few thousand for millions of lines), remembered across the
    chunks of a run, so this Python loop never runs per line.
    """
    raws: list[str] = values.drop_nulls().unique().to_list()
    norm: list[str | None] = []
    is_trusted: list[bool] = []
    is_ignored: list[bool] = []
    for raw in raws:
        n, t, i = _classify(raw, trusted, ignored)
        norm.append(n)
        is_trusted.append(t)
        is_ignored.append(i)
    return pl.DataFrame(
        {"raw": raws, "norm": norm, "trusted": is_trusted, "ignored": is_ignored},
        schema={"raw": pl.String, "norm": pl.String, "trusted": pl.Boolean, "ignored": pl.Boolean},
    )


def attribute(
    df: pl.DataFrame, trusted: NetworkSet, ignored: NetworkSet, *, host_col: str = "remote_addr"
) -> pl.DataFrame:
    """Add ``address``, ``spoofed``, ``ignored``; drop rows with no valid address.

    ``cf_ip`` (if present and not null) is used only when ``host_col`` is a trusted proxy.
    """
    has_cf = "cf_ip" in df.columns
    values = pl.concat([df[host_col], df["cf_ip"]]) if has_cf else df[host_col]
    table = _lookup(values, trusted, ignored)
    keys = table["raw"]

    def look(col: str, what: str, default: object) -> pl.Expr:
        return pl.col(col).replace_strict(keys, table[what], default=default)

    direct = look(host_col, "norm", None)
    if has_cf:
        direct_trusted = look(host_col, "trusted", False)
        cf = look("cf_ip", "norm", None)
        use_cf = direct_trusted & cf.is_not_null()
        address = pl.when(use_cf).then(cf).otherwise(direct)
        spoofed = pl.col("cf_ip").is_not_null() & ~direct_trusted
    else:
        address = direct
        spoofed = pl.lit(False)
    out = df.with_columns(address=address, spoofed=spoofed).filter(pl.col("address").is_not_null())
    by_norm = table.filter(pl.col("norm").is_not_null()).unique("norm")
    return out.with_columns(
        ignored=pl.col("address").replace_strict(by_norm["norm"], by_norm["ignored"], default=False)
    )
