"""Layer 4 - the Dagster code location: thin wiring over the entity sync (``pipeline``).

One dynamic partition per row of ``core.integration_accounts`` (``partitions.py``); ``assets.py``
turns every entity of the registry (``pipeline.entities``) into ``bitrix_<x>`` -> ``mapped_<x>`` ->
``core_<x>``, one step that calls the Dagster-free ``EntitySync`` and yields what it did;
``jobs.py``, ``schedules.py``, ``sensors.py`` and ``inbox.py`` keep them fresh; ``resources.py``
holds Core, Bitrix24 and the raw-record store; ``run_health.py`` closes what killed runs leave.
``bitrix24_assets/definitions.py`` loads this folder with ``dg.load_from_defs_folder``.

Nothing in layers 1-3 imports this package. Everything here imports Dagster.
"""
