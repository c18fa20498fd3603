"""The code location: everything under ``bitrix24_assets/defs`` (``workspace.yaml`` points here).

``load_from_defs_folder`` imports every module in ``defs/`` and merges what they define, so new
modules (the webhooks inbox sensor in ``defs/inbox.py``) join without editing this file.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
