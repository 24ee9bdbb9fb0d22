"""`import torchvision` must work in every process of the environment (install step's .pth hook)."""
import subprocess
import sys

import pytest


def test_fresh_interpreter_imports_torchvision():
    out = subprocess.run([sys.executable, "-c", "import torchvision, qwen_vl_utils; print(torchvision.__version__)"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow
def test_ray_worker_imports_torchvision(ray_session):
    @ray_session.remote(num_cpus=0.5)
    def probe():
        import torchvision
        from torchvision.transforms import InterpolationMode  # what qwen-vl-utils needs

        return torchvision.__version__, InterpolationMode.BICUBIC.value

    version, mode = ray_session.get(probe.remote())
    assert version.startswith("0.28") and mode == "bicubic"
