"""Faults: the Toxiproxy API client used by drill actions (`client`), and a compatible server
(`server/`).

Nothing is imported here: the client pulls in httpx, and `omnidrill faultproxy` (registered
when the CLI starts) needs none of it.
"""
