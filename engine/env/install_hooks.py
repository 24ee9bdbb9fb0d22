"""Write the interpreter start-up hook (`gradus_env.pth`) into this environment's site-packages.

Run by `make env` (the project's install step). A .pth file is the one mechanism that reaches
every Python process of the environment, including Ray workers and vLLM engine subprocesses.
"""
from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

from engine.env import torchvision_shim

PTH_NAME = "gradus_env.pth"
# The shim is copied as a standalone module so the hook works however gradus is installed
# (editable or not) and whatever order site-packages' .pth files run in.
SHIM_MODULE = "_gradus_torchvision_shim"
PTH_LINE = f"import {SHIM_MODULE}; {SHIM_MODULE}.install()\n"


def main() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    shutil.copyfile(torchvision_shim.__file__, site / f"{SHIM_MODULE}.py")
    (site / PTH_NAME).write_text(PTH_LINE)
    print(f"installed torchvision shim hook in {site}")


if __name__ == "__main__":
    main()
