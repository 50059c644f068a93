"""The configuration reference names every setting there is."""
from pathlib import Path

from core.settings import describe


def test_every_setting_is_documented() -> None:
    text = Path("docs/configuration.md").read_text()
    missing = [var for var, _, _ in describe() if f"`{var}`" not in text]
    assert not missing, f"undocumented settings: {missing}"
