"""Layer 4 - the Dagster code location: thin wiring of the client, Core SDK and sync mappers.

One dynamic partition per row of ``core.integration_accounts`` (``partitions.py``); the asset
factory (``assets.py``) turns every ``sync.ENTITIES`` spec into ``bitrix_<x>`` -> ``mapped_<x>`` ->
``core_<x>``; ``jobs.py``, ``schedules.py`` and ``sensors.py`` keep them fresh; ``resources.py``
wires Core and Bitrix24; ``io_manager.py`` says where intermediate personal data lives.
``bitrix24_assets/definitions.py`` loads this folder with ``dg.load_from_defs_folder``, so a module
added here (e.g. ``inbox.py``) is picked up without editing anything else.

Nothing in layers 1-3 imports this package. Everything here imports Dagster.
"""
