"""``python -m bitrix24_assets.sandbox`` = ``bitrix24-sandbox``."""

from .cli import main

main()
