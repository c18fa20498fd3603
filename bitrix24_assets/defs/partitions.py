"""The one partition dimension: ``core.integration_accounts.id`` (a UUID), shared by every asset.

Keys are account UUIDs, never portal URLs: keys appear in the UI, run tags, storage paths and
logs, and a webhook URL carries its secret token. The accounts sensor adds and removes keys.
"""

import dagster as dg

ACCOUNTS_PARTITIONS_NAME = "integration_accounts"
integration_accounts = dg.DynamicPartitionsDefinition(name=ACCOUNTS_PARTITIONS_NAME)
