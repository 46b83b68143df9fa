"""The daemon's HTTP API (aiohttp): one app served on the local unix socket and on TCP 2377."""
