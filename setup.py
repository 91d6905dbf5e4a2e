"""Packaging beyond what pyproject.toml can say: the bundled recipes (``configs/``) and demo data (``data/``)
travel inside the wheel as ``groundwork/bundled/configs`` and ``groundwork/bundled/data``, where
``groundwork.bundled`` finds them outside a checkout."""

from setuptools import find_packages, setup

PACKAGES = find_packages(include=["groundwork*", "dialogue*", "reward_models*", "serving*", "parley*"])
# The asset folders as package directories (with their sub-folders) so that package_data can carry their files.
ASSETS = {"groundwork.bundled.configs": "configs", "groundwork.bundled.data": "data"}
ASSET_PACKAGES = {**ASSETS, "groundwork.bundled.configs.accelerate": "configs/accelerate"}
for sub in ("kb", "ppo", "preferences", "preferences/quality", "preferences/safety", "preferences/faithfulness",
            "safety", "support", "translation"):
    ASSET_PACKAGES[f"groundwork.bundled.data.{sub.replace('/', '.')}"] = f"data/{sub}"

setup(
    packages=[*PACKAGES, *ASSET_PACKAGES],
    package_dir=ASSET_PACKAGES,
    package_data={
        "serving": ["quantize/*.cpp"],
        **{name: ["*.yaml", "*.jsonl", "*.md"] for name in ASSET_PACKAGES},
    },
    exclude_package_data={name: ["*.py"] for name in ASSET_PACKAGES},
)
