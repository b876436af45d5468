"""Who a failure is attributed to: validated addresses, and the Cloudflare header rule.

``CF-Connecting-IP`` is believed only when the direct client (``$remote_addr``) is a trusted
proxy (the local reverse proxy's networks, Cloudflare's ranges). A client reaching the origin
directly can write any header: its line is attributed to its own address and flagged ``spoofed``.
Addresses are validated once per distinct value, never per line: canonical dotted-quad IPv4
(the bulk of a web log) by a Polars regex and integer ranges, everything else (IPv6, odd
spellings) by ``ipaddress``. Both give the same answer for a dotted quad (tested).
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


# A canonical dotted quad: what ``ipaddress`` accepts as IPv4 and prints back unchanged (no
# leading zeros, no spaces, each part 0-255).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
DOTTED_QUAD = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
_LOOKUP_SCHEMA = {"raw": pl.String, "norm": pl.String, "trusted": pl.Boolean, "ignored": pl.Boolean}


def _in_ranges(value: pl.Expr, ranges: list[tuple[int, int]]) -> pl.Expr:
    if not ranges:
        return pl.lit(False)
    return pl.any_horizontal([value.is_between(lo, hi) for lo, hi in ranges])


def _lookup_dotted_quads(raws: pl.Series, trusted: NetworkSet, ignored: NetworkSet) -> pl.DataFrame:
    parts = raws.str.split_exact(".", 3).struct.unnest()
    value = pl.lit(0, pl.Int64)
    for name in parts.columns:
        value = value * 256 + pl.col(name).cast(pl.Int64)
    return parts.select(
        raw=raws,
        norm=raws,
        trusted=_in_ranges(value, trusted.ranges(4)),
        ignored=_in_ranges(value, ignored.ranges(4)),
    )


def _lookup(values: pl.Series, trusted: NetworkSet, ignored: NetworkSet) -> pl.DataFrame:
    """One row per distinct raw address: normalised form (null if invalid) and memberships.

    Distinct addresses only; dotted quads in Polars, the rest (IPv6: a few thousand in
    millions of lines) through ``ipaddress``, remembered across the chunks of a run.
    """
    distinct = values.drop_nulls().unique()
    quad = distinct.str.contains(DOTTED_QUAD)
    quads = _lookup_dotted_quads(distinct.filter(quad), trusted, ignored)
    raws: list[str] = distinct.filter(~quad).to_list()
    norm: list[str | None] = []
    is_trusted: list[bool] = []
    is_ignored: list[bool] = []
    for raw in raws:
        n, t, i = _classify(raw, trusted, ignored)
        norm.append(n)
        is_trusted.append(t)
        is_ignored.append(i)
    others = pl.DataFrame(
        {"raw": raws, "norm": norm, "trusted": is_trusted, "ignored": is_ignored},
        schema=_LOOKUP_SCHEMA,
    )
    return pl.concat([quads.cast(_LOOKUP_SCHEMA), others])  # type: ignore[arg-type]


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
