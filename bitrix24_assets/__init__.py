"""bitrix24_assets: keep a company platform's Core database in sync with Bitrix24 portals.

Layers (a lower layer never imports a higher one), see ``README.md``:

1. ``bitrix24``  - the Bitrix24 REST client (no Dagster, no database)
2. ``core``      - the Core SDK: migrations, merges, sync logs, event inbox (no Dagster)
3. ``sync``      - pure mapping from Bitrix24 records to Core rows (no I/O)
4. ``defs``      - the Dagster code location, thin wiring of 1-3
5. ``webhooks``  - the receiver for Bitrix24 outgoing events
6. ``sandbox``   - a local emulator of the Bitrix24 REST API (knows nothing of our client)
"""
