"""Log formats known by name, as nginx ``log_format`` strings (data only: no Polars here).

A filter names formats; ``parse/nginx.py`` compiles them into anchored parsers. Any other string
containing ``$`` is taken as a ``log_format`` itself, so a user can paste theirs into the config.
"""

from __future__ import annotations

FORMATS: dict[str, str] = {
    # The seed's format: NPM's proxy format plus the Cloudflare visitor's address.
    "default_plus_cf": (
        "[$time_local] $upstream_cache_status $upstream_status $status - $request_method $scheme "
        '$host "$request_uri" [Client $remote_addr] [CF-conn-IP $http_cf_connecting_ip] '
        '[Length $body_bytes_sent] [Gzip $gzip_ratio] [Sent-to $server] "$http_user_agent" '
        '"$http_referer"'
    ),
    # Nginx Proxy Manager's stock formats (docker/rootfs/etc/nginx/nginx.conf): `proxy` for
    # proxy hosts (proxy-host-N_access.log), `standard` for the fallback/default host.
    "npm_proxy": (
        "[$time_local] $upstream_cache_status $upstream_status $status - $request_method $scheme "
        '$host "$request_uri" [Client $remote_addr] [Length $body_bytes_sent] [Gzip $gzip_ratio] '
        '[Sent-to $server] "$http_user_agent" "$http_referer"'
    ),
    "npm_standard": (
        '[$time_local] $status - $request_method $scheme $host "$request_uri" '
        '[Client $remote_addr] [Length $body_bytes_sent] [Gzip $gzip_ratio] "$http_user_agent" '
        '"$http_referer"'
    ),
    "combined": (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent"'
    ),
}

# Not a log_format: nginx's error log has a fixed shape, parsed by its own anchored regex.
ERROR_FORMATS = ("nginx_error",)


def is_known_format(name: str) -> bool:
    return name in FORMATS or name in ERROR_FORMATS or "$" in name
