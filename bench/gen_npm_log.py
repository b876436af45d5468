#!/usr/bin/env python3
# ruff: noqa: E501
# Copy of /work/shared/bench/gen_npm_log.py (ANCHORS.md inputs), reformatted by ruff: same bytes out.
"""Deterministic generator of Nginx Proxy Manager access-log lines (seed's ``default_plus_cf``).

Format (nginx ``log_format default_plus_cf``)::

    '[$time_local] $upstream_cache_status $upstream_status $status - $request_method $scheme $host
     "$request_uri" [Client $remote_addr] [CF-conn-IP $http_cf_connecting_ip] [Length $body_bytes_sent]
     [Gzip $gzip_ratio] [Sent-to $server] "$http_user_agent" "$http_referer"'

Example line::

    [06/Jan/2025:09:22:03 +0100] - - 403 - GET https one137.dev "/test" [Client 172.21.0.2] [CF-conn-IP 197.130.148.156] [Length 111] [Gzip 1.35] [Sent-to STATIC_FILES] "Mozilla/5.0 ..." "-"

Traffic model (same ``--seed`` and ``--lines`` give byte-identical output):

* statuses: ~85 % 200/304, ~8 % 404, ~3 % 403, the rest 301/302/206/401/499/500/502/400;
* ~70 % of lines come through the Cloudflare tunnel (``[Client 172.21.0.x] [CF-conn-IP <visitor>]``),
  ~30 % do not (``[CF-conn-IP -]``: LAN / WireGuard / Docker-internal clients, and direct hits);
* a few hundred attacker addresses (``--attackers``) scan in bursts of mostly-404 requests, some
  via Cloudflare (address in CF-conn-IP), some direct (address in Client);
* a small share of CF-conn-IP addresses are IPv6;
* LAN / WireGuard / Docker-internal clients are busy and make benign 404s too: a few of them reach
  10 404s in 10 minutes (with seed 42, 8 of the 308 such addresses), so ``ignoreip`` matters;
* timestamps never decrease (second resolution, fixed ``+0100`` offset by default);
* ``--spoof-rate`` (default 0.001 of attack lines) puts ``[Client a] [CF-conn-IP b]`` inside the
  user agent, as a hostile client can: a greedy ``.*`` filter attributes such a line to ``b``.

Usage: ``python3 gen_npm_log.py --lines N --seed S > file``
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# host -> nginx $server (NPM writes the upstream container name, or STATIC_FILES for its own pages)
HOSTS = [
    ("one137.dev", "STATIC_FILES", 30),
    ("nextcloud.one137.dev", "ct-nextcloud", 25),
    ("jellyfin.one137.dev", "ct-jellyfin", 15),
    ("portainer.one137.dev", "ct-portainer", 6),
    ("transmission.one137.dev", "ct-wireguard-client", 5),
    ("grafana.one137.dev", "ct-grafana", 6),
    ("vault.one137.dev", "ct-vaultwarden", 8),
    ("photos.one137.dev", "ct-immich", 5),
]

BENIGN_URIS = {
    "STATIC_FILES": [
        "/",
        "/index.html",
        "/about",
        "/blog/",
        "/blog/2024/12/self-hosting-notes",
        "/blog/2025/01/fail2ban-cloudflare",
        "/css/main.css",
        "/js/site.js",
        "/img/logo.svg",
        "/favicon.ico",
        "/robots.txt",
        "/sitemap.xml",
        "/feed.xml",
        "/fonts/inter-var.woff2",
        "/test",
    ],
    "ct-nextcloud": [
        "/",
        "/login",
        "/apps/files/",
        "/ocs/v2.php/apps/notifications/api/v2/notifications?format=json",
        "/remote.php/dav/files/alice/Photos/IMG_{n}.jpg",
        "/status.php",
        "/index.php/apps/files/ajax/list.php?dir=%2FDocuments",
        "/core/js/oc.js?v={h}",
        "/apps/theming/manifest/core?v={h}",
        "/remote.php/dav/calendars/alice/personal/",
    ],
    "ct-jellyfin": [
        "/web/index.html",
        "/System/Info/Public",
        "/Users/{h}/Items?ParentId={h}&Limit=100",
        "/Items/{h}/Images/Primary?fillHeight=300&quality=96",
        "/Sessions/Playing/Progress",
        "/socket?api_key={h}&deviceId={h}",
        "/videos/{h}/master.m3u8?MediaSourceId={h}",
    ],
    "ct-portainer": [
        "/",
        "/api/endpoints/2",
        "/api/endpoints/2/docker/containers/json?all=1",
        "/api/status",
        "/api/users/1",
        "/main.{h}.js",
    ],
    "ct-wireguard-client": ["/transmission/web/", "/transmission/rpc", "/favicon.ico"],
    "ct-grafana": [
        "/",
        "/api/live/ws",
        "/api/ds/query",
        "/d/{h}/node-exporter?orgId=1&refresh=30s",
        "/public/build/app.{h}.js",
        "/api/dashboards/uid/{h}",
    ],
    "ct-vaultwarden": [
        "/",
        "/api/sync?excludeDomains=true",
        "/identity/connect/token",
        "/notifications/hub?access_token={h}",
        "/icons/github.com/icon.png",
        "/api/config",
        "/app/main.{h}.js",
    ],
    "ct-immich": [
        "/",
        "/api/server/ping",
        "/api/assets/{h}/thumbnail?size=preview",
        "/api/timeline/buckets?size=MONTH",
        "/_app/immutable/chunks/{h}.js",
        "/api/users/me",
    ],
}

# Paths that scanners try. nginx writes \" and \\ in $request_uri as \\x22 and \\x5C.
ATTACK_URIS = [
    "/wp-login.php",
    "/wp-admin/setup-config.php",
    "/xmlrpc.php",
    "/.env",
    "/.env.production",
    "/.git/config",
    "/.git/HEAD",
    "/phpmyadmin/index.php",
    "/pma/index.php",
    "/admin/config.php",
    "/config.json",
    "/.aws/credentials",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/cgi-bin/luci/;stok=/locale?form=country&operation=write",
    "/boaform/admin/formLogin",
    "/actuator/env",
    "/actuator/health",
    "/solr/admin/info/system?wt=json",
    "/owa/auth/logon.aspx",
    "/HNAP1/",
    "/server-status",
    "/.DS_Store",
    "/backup.zip",
    "/db.sql",
    "/shell.php?cmd=id",
    "/wp-content/plugins/wp-file-manager/lib/php/connector.minimal.php",
    "/api/v1/pods",
    "/.vscode/sftp.json",
    "/index.php?s=/Index/\\x5Cthink\\x5Capp/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP",
    "/console/login/LoginForm.jsp",
    "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession",
    "/geoserver/web/",
    "/manager/html",
    "/telescope/requests",
    "/_ignition/execute-solution",
    "/debug/default/view?panel=config",
    "/containers/json",
    "/.well-known/security.txt",
    "/sitemap.xml.gz",
    "/info.php",
    "/phpinfo.php",
    "/test.php",
    "/admin",
    "/login.action",
    "/jenkins/login",
    "/user/login",
    "/cdn-cgi/trace",
    "/%2e%2e/%2e%2e/etc/passwd",
]

BENIGN_UAS = [
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
        12,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        14,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        8,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 9),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", 5),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.104 Mobile Safari/537.36",
        8,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15",
        6,
    ),
    (
        "Mozilla/5.0 (Linux) mirall/3.15.3git (build 2024) (Nextcloud, debian-6.1.0-28-amd64 ClientArchitecture: x86_64 OsArchitecture: x86_64)",
        7,
    ),
    ("Jellyfin-Server/10.10.3", 3),
    ("Jellyfin Media Player/1.11.1 (Windows; 10.0.22631)", 4),
    ("Bitwarden_Mobile/2024.12.0 (iOS 18.1; Model iPhone16,2)", 3),
    ("Immich_iOS_1.123.0", 3),
    ("Uptime-Kuma/1.23.16", 2),
    ("curl/8.7.1", 1),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 2),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 1),
    ("Grafana/11.4.0", 1),
]

ATTACK_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.129 Safari/537.36",
    "Mozilla/5.0 zgrab/0.x",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "curl/7.88.1",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "Mozilla/5.0 (l9scan/2.0.; +https://leakix.net)",
    "Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))",
    "Fuzz Faster U Fool v2.1.0-dev",
    "-",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 14_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.3 Mobile/15E148 Safari/604.1",
]

REFERERS = [
    "-",
    "https://one137.dev/",
    "https://www.google.com/",
    "https://nextcloud.one137.dev/apps/files/",
    "https://jellyfin.one137.dev/web/index.html",
    "https://portainer.one137.dev/",
    "https://grafana.one137.dev/",
]

# status -> weight among *benign* lines; attack lines (~5 % of all) add mostly 404s on top,
# so that the file as a whole is ~85 % 200/304, ~8 % 404, ~3 % 403.
BENIGN_STATUS = [
    (200, 750),
    (304, 145),
    (404, 37),
    (403, 29),
    (301, 10),
    (302, 10),
    (206, 5),
    (401, 5),
    (499, 3),
    (500, 2),
    (502, 3),
    (400, 1),
]
ATTACK_STATUS = [(404, 90), (403, 5), (400, 2), (301, 2), (200, 1)]

CF_TUNNELS = ["172.21.0.2", "172.21.0.3"]  # cloudflared containers: $remote_addr of CF traffic
LAN_CLIENTS = [
    "192.168.1.66",
    "192.168.1.10",
    "192.168.1.23",
    "192.168.1.42",
    "10.100.0.3",
    "10.100.0.5",
]
DOCKER_CLIENTS = ["172.18.0.1", "172.20.0.3"]  # healthchecks, uptime-kuma, internal calls

_BAD_FIRST_OCTETS = {0, 10, 100, 127, 169, 172, 192, 198, 203}


def public_ipv4(rng: random.Random) -> str:
    while True:
        a = rng.randint(1, 223)
        if a not in _BAD_FIRST_OCTETS:
            return f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def public_ipv6(rng: random.Random) -> str:
    prefix = rng.choice(
        ["2a01:cb1d", "2001:861", "2a02:8428", "2600:1700", "2406:da18", "2a0a:a540"]
    )
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(2)]
    tail = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(4)]
    if rng.random() < 0.5:
        return f"{prefix}:{':'.join(groups)}::{':'.join(tail[:2])}"
    return f"{prefix}:{':'.join(groups)}:{':'.join(tail)}"


def weighted(rng: random.Random, items: list[tuple[object, int]]) -> object:
    total = sum(w for _, w in items)
    r = rng.random() * total
    for item, w in items:
        r -= w
        if r < 0:
            return item
    return items[-1][0]


def fmt_time(t: dt.datetime, offset: str) -> str:
    return f"{t.day:02d}/{MONTHS[t.month - 1]}/{t.year}:{t.hour:02d}:{t.minute:02d}:{t.second:02d} {offset}"


def fill(rng: random.Random, uri: str) -> str:
    if "{h}" in uri:
        uri = uri.replace("{h}", f"{rng.getrandbits(48):012x}")
    if "{n}" in uri:
        uri = uri.replace("{n}", str(rng.randint(1000, 9999)))
    return uri


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--start", default="2025-01-06T00:00:00", help="local start time (ISO, no zone)"
    )
    ap.add_argument("--offset", default="+0100", help="UTC offset written in every line")
    ap.add_argument("--rate", type=float, default=10.0, help="mean lines per second")
    ap.add_argument("--attackers", type=int, default=300)
    ap.add_argument(
        "--attack-share", type=float, default=0.05, help="share of lines from attack bursts"
    )
    ap.add_argument(
        "--spoof-rate",
        type=float,
        default=0.001,
        help="share of attack lines with a spoofing user agent",
    )
    args = ap.parse_args()

    rng = random.Random(args.seed)
    t = dt.datetime.fromisoformat(args.start)
    frac = 0.0

    cf_visitors = [
        public_ipv6(rng) if rng.random() < 0.12 else public_ipv4(rng) for _ in range(8000)
    ]
    direct_visitors = [public_ipv4(rng) for _ in range(1500)]
    attackers = []
    for _ in range(args.attackers):
        via_cf = rng.random() < 0.7
        ip = public_ipv6(rng) if via_cf and rng.random() < 0.08 else public_ipv4(rng)
        attackers.append((ip, via_cf, rng.choice(ATTACK_UAS)))
    ua_w = BENIGN_UAS
    host_w = [((h, s), w) for h, s, w in HOSTS]
    bursts: list[list] = []  # [attacker, remaining, host, server]

    out = sys.stdout
    buf: list[str] = []
    for _ in range(args.lines):
        frac += rng.expovariate(args.rate)
        if frac >= 1.0:
            whole = int(frac)
            t += dt.timedelta(seconds=whole)
            frac -= whole

        attack = rng.random() < args.attack_share
        if attack:
            if not bursts or (len(bursts) < 4 and rng.random() < 0.03):
                a = rng.choice(attackers)
                size = min(400, 3 + int(rng.paretovariate(1.3) * 6))
                host, server = weighted(rng, host_w)  # type: ignore[misc]
                bursts.append([a, size, host, server])
            b = rng.choice(bursts)
            (ip, via_cf, ua), host, server = b[0], b[2], b[3]
            b[1] -= 1
            if b[1] <= 0:
                bursts.remove(b)
            status = weighted(rng, ATTACK_STATUS)
            method = "GET" if rng.random() < 0.85 else rng.choice(["POST", "HEAD", "PROPFIND"])
            uri = rng.choice(ATTACK_URIS)
            if via_cf:
                client, cf = rng.choice(CF_TUNNELS), ip
            else:
                client, cf = ip, "-"
            if rng.random() < args.spoof_rate:
                fake = public_ipv4(rng)
                ua = f"Mozilla/5.0 [Client {fake}] [CF-conn-IP {fake}] (compatible)"
            referer = "-"
            scheme = "https" if rng.random() < 0.9 else "http"
        else:
            status = weighted(rng, BENIGN_STATUS)
            host, server = weighted(rng, host_w)  # type: ignore[misc]
            r = rng.random()
            if r < 0.70:
                client = rng.choice(CF_TUNNELS)
                # popularity skew: a few visitors make most of the traffic
                cf = cf_visitors[int(len(cf_visitors) * rng.random() ** 3)]
            else:
                cf = "-"
                r2 = rng.random()
                if r2 < 0.60:
                    client = LAN_CLIENTS[int(len(LAN_CLIENTS) * rng.random() ** 2)]
                elif r2 < 0.85:
                    client = rng.choice(DOCKER_CLIENTS)
                else:
                    client = direct_visitors[int(len(direct_visitors) * rng.random() ** 2)]
            method = weighted(
                rng,
                [
                    ("GET", 880),
                    ("POST", 60),
                    ("HEAD", 20),
                    ("OPTIONS", 10),
                    ("PROPFIND", 20),
                    ("PUT", 10),
                ],
            )
            uri = fill(rng, rng.choice(BENIGN_URIS[server]))
            if status == 404 and rng.random() < 0.5:
                uri = rng.choice(
                    [
                        "/favicon.ico",
                        "/apple-touch-icon.png",
                        "/apple-touch-icon-precomposed.png",
                        "/abc",
                        "/.well-known/traffic-advice",
                        "/manifest.json",
                    ]
                )
            ua = weighted(rng, ua_w)
            referer = REFERERS[0] if rng.random() < 0.6 else rng.choice(REFERERS)
            scheme = "https" if rng.random() < 0.97 else "http"

        if status == 304:
            length, gzip = 0, "-"
        elif status in (301, 302):
            length, gzip = rng.choice([162, 166, 169]), "-"
        elif status >= 400:
            length = rng.choice([0, 111, 146, 150, 153, 162, 168, 172, 548, 555])
            gzip = "-" if length < 200 and rng.random() < 0.5 else f"{rng.uniform(1.1, 3.5):.2f}"
        else:
            length = int(rng.lognormvariate(8, 1.8))
            gzip = f"{rng.uniform(1.2, 6.5):.2f}" if rng.random() < 0.55 else "-"
        if server == "STATIC_FILES":
            up_cache, up_status = "-", "-"
        else:
            up_cache = "-" if rng.random() < 0.9 else rng.choice(["HIT", "MISS", "EXPIRED"])
            up_status = str(status) if status not in (499,) else "-"
            if up_cache == "HIT":
                up_status = "-"

        buf.append(
            f"[{fmt_time(t, args.offset)}] {up_cache} {up_status} {status} - {method} {scheme} {host} "
            f'"{uri}" [Client {client}] [CF-conn-IP {cf}] [Length {length}] [Gzip {gzip}] '
            f'[Sent-to {server}] "{ua}" "{referer}"\n'
        )
        if len(buf) >= 10000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


if __name__ == "__main__":
    main()
